package ai.tailor.server;

import java.io.IOException;
import java.io.PrintStream;
import java.lang.management.ManagementFactory;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.CountDownLatch;

import org.neo4j.configuration.GraphDatabaseInternalSettings;
import org.neo4j.configuration.GraphDatabaseSettings;
import org.neo4j.configuration.connectors.BoltConnector;
import org.neo4j.configuration.connectors.HttpConnector;
import org.neo4j.configuration.connectors.HttpsConnector;
import org.neo4j.configuration.helpers.SocketAddress;
import org.neo4j.dbms.api.DatabaseManagementService;
import org.neo4j.dbms.api.DatabaseManagementServiceBuilder;
import org.neo4j.graphdb.GraphDatabaseService;
import org.neo4j.graphdb.QueryExecutionException;
import org.neo4j.io.ByteUnit;
import org.neo4j.logging.Level;
import org.neo4j.logging.log4j.Log4jLogProvider;

/**
 * tailor's local Neo4j server: Neo4j 5.26 Community run embedded, with Bolt and HTTP (Neo4j Browser at
 * /browser/) bound to one host (127.0.0.1 by default) and authentication on.
 *
 * <p>The password is read from a file (never argv or the environment, which other local users can read
 * through /proc). On the first start it is written as the initial password before anything listens, so the
 * default neo4j/neo4j login never exists; on later starts the neo4j user is re-aligned with the file when
 * they differ. Prints {@code TAILOR_SERVER_READY bolt=H:P http=H:P} once ready and
 * {@code TAILOR_SERVER_STOPPED} after a clean shutdown (SIGTERM runs the shutdown hook).
 */
public final class TailorNeo4jServer {

    static final String READY = "TAILOR_SERVER_READY";
    static final String STOPPED = "TAILOR_SERVER_STOPPED";

    private TailorNeo4jServer() {}

    public static void main(String[] argv) {
        Options options;
        try {
            options = Options.parse(argv);
        } catch (IllegalArgumentException e) {
            System.err.println("tailor-neo4j-server: " + e.getMessage());
            System.err.println(Options.USAGE);
            System.exit(2);
            return;
        }
        try {
            run(options);
        } catch (Throwable t) {
            System.err.println("TAILOR_SERVER_FAILED " + t);
            t.printStackTrace(System.err);
            System.exit(1);
        }
    }

    private static void run(Options o) throws Exception {
        PrintStream out = System.out;
        String password = readPassword(o.passwordFile);
        Path home = o.dataDir.resolve("db").toAbsolutePath();
        Path logs = o.dataDir.resolve("logs").toAbsolutePath();
        Files.createDirectories(home);
        Files.createDirectories(logs);

        // First start: no system database yet, so the initial password can still be set the way
        // `neo4j-admin dbms set-initial-password` does (auth.ini, read once when the system db is created).
        Path systemDb = home.resolve("data/databases").resolve(GraphDatabaseSettings.SYSTEM_DATABASE_NAME);
        if (!Files.exists(systemDb)) {
            InitialPassword.write(home, password);
            out.println("tailor: new database in " + home + "; password of user neo4j set from the file");
        }

        long heap = Runtime.getRuntime().maxMemory();
        DatabaseManagementServiceBuilder builder = new DatabaseManagementServiceBuilder(home)
                .setUserLogProvider(new Log4jLogProvider(out, Level.INFO))
                .setConfig(GraphDatabaseSettings.auth_enabled, true)
                .setConfig(GraphDatabaseSettings.logs_directory, logs)
                .setConfig(GraphDatabaseSettings.default_listen_address, new SocketAddress(o.host))
                .setConfig(GraphDatabaseSettings.default_advertised_address, new SocketAddress(o.host))
                .setConfig(BoltConnector.enabled, true)
                .setConfig(BoltConnector.listen_address, new SocketAddress(o.host, o.boltPort))
                .setConfig(BoltConnector.advertised_address, new SocketAddress(o.host, o.boltPort))
                .setConfig(HttpConnector.enabled, o.httpPort > 0)
                .setConfig(HttpsConnector.enabled, false)
                .setConfig(GraphDatabaseSettings.udc_enabled, false)  // no usage reports from a local tool
                // Netty's graceful Bolt shutdown waits a 5 s quiet period per event loop group by default.
                .setConfig(GraphDatabaseInternalSettings.netty_server_shutdown_quiet_period, 0)
                .setConfig(
                        GraphDatabaseInternalSettings.netty_server_shutdown_timeout, Duration.ofSeconds(5));
        if (o.httpPort > 0) {
            builder.setConfig(HttpConnector.listen_address, new SocketAddress(o.host, o.httpPort))
                    .setConfig(HttpConnector.advertised_address, new SocketAddress(o.host, o.httpPort));
        }
        builder.setConfig(GraphDatabaseSettings.pagecache_memory, ByteUnit.parse(o.pagecache))
                // Large UNWIND batches (10k rows with 1280-d feature vectors) hold their parameters and
                // transaction state on the heap: one transaction may use half the heap, all of them 70%.
                .setConfig(GraphDatabaseSettings.memory_transaction_max_size, heap / 2)
                .setConfig(GraphDatabaseSettings.memory_transaction_global_max_size, heap * 7 / 10);

        out.printf(Locale.ROOT, "tailor: starting Neo4j (JVM up %.1f s)%n", uptime());
        DatabaseManagementService dbms = builder.build();
        CountDownLatch stopped = new CountDownLatch(1);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            out.println("tailor: shutting down Neo4j");
            try {
                dbms.shutdown();
                out.println(STOPPED);
            } catch (Throwable t) {
                out.println("TAILOR_SERVER_STOP_FAILED " + t);
            } finally {
                out.flush();
                stopped.countDown();
            }
        }, "tailor-shutdown"));

        syncPassword(dbms, password, out);
        Files.deleteIfExists(InitialPassword.file(home));  // read once when the system db was created
        out.printf(Locale.ROOT, "tailor: Neo4j started in %.1f s%n", uptime());
        out.printf(Locale.ROOT, "%s bolt=%s:%d http=%s:%d%n", READY, o.host, o.boltPort, o.host, o.httpPort);
        out.flush();
        stopped.await();  // keeps the JVM up until SIGTERM/SIGINT runs the shutdown hook
    }

    /** Makes the neo4j user's password equal to the file's, when (and only when) it differs. */
    private static void syncPassword(DatabaseManagementService dbms, String password, PrintStream out) {
        GraphDatabaseService system = dbms.database(GraphDatabaseSettings.SYSTEM_DATABASE_NAME);
        try {
            system.executeTransactionally(
                    "ALTER USER neo4j SET PASSWORD $pw CHANGE NOT REQUIRED", Map.of("pw", password));
            out.println("tailor: password for user neo4j updated from the password file");
        } catch (QueryExecutionException e) {
            // Neo4j refuses to "change" a password to the one it already has: nothing to do.
            String msg = String.valueOf(e.getMessage());
            if (!msg.contains("cannot be the same")) {
                throw e;
            }
        }
    }

    private static double uptime() {
        return ManagementFactory.getRuntimeMXBean().getUptime() / 1000.0;
    }

    static String readPassword(Path file) throws IOException {
        // Only the line end is dropped: spaces may be part of the password (the Python side does the same).
        String pw = Files.readString(file, StandardCharsets.UTF_8).replaceAll("[\\r\\n]+$", "");
        if (pw.isEmpty()) {
            throw new IllegalArgumentException("password file " + file + " is empty");
        }
        return pw;
    }

    /** Command-line options; the password itself is never one of them. */
    static final class Options {
        static final String USAGE = "usage: TailorNeo4jServer --data-dir DIR --password-file FILE "
                + "[--bolt-port 7687] [--http-port 7474 (0 = off)] [--host 127.0.0.1] [--pagecache 512m]";

        Path dataDir;
        Path passwordFile;
        int boltPort = 7687;
        int httpPort = 7474;
        String host = "127.0.0.1";
        String pagecache = "512m";

        static Options parse(String[] argv) {
            Options o = new Options();
            for (int i = 0; i < argv.length; i++) {
                String key = argv[i];
                if (i + 1 >= argv.length) {
                    throw new IllegalArgumentException("missing value for " + key);
                }
                String value = argv[++i];
                switch (key) {
                    case "--data-dir" -> o.dataDir = Path.of(value).toAbsolutePath();
                    case "--password-file" -> o.passwordFile = Path.of(value).toAbsolutePath();
                    case "--bolt-port" -> o.boltPort = Integer.parseInt(value);
                    case "--http-port" -> o.httpPort = Integer.parseInt(value);
                    case "--host" -> o.host = value;
                    case "--pagecache" -> o.pagecache = value;
                    default -> throw new IllegalArgumentException("unknown option " + key);
                }
            }
            if (o.dataDir == null || o.passwordFile == null) {
                throw new IllegalArgumentException("--data-dir and --password-file are required");
            }
            return o;
        }
    }
}
