package ai.tailor.server;

import java.nio.charset.StandardCharsets;
import java.nio.file.Path;

import org.neo4j.configuration.Config;
import org.neo4j.configuration.GraphDatabaseSettings;
import org.neo4j.io.fs.DefaultFileSystemAbstraction;
import org.neo4j.io.fs.FileSystemAbstraction;
import org.neo4j.kernel.impl.security.User;
import org.neo4j.logging.NullLogProvider;
import org.neo4j.memory.EmptyMemoryTracker;
import org.neo4j.server.security.SecureHasher;
import org.neo4j.server.security.SystemGraphCredential;
import org.neo4j.server.security.auth.CommunitySecurityModule;
import org.neo4j.server.security.auth.FileUserRepository;

/**
 * Writes the initial password of user neo4j, as {@code neo4j-admin dbms set-initial-password} does
 * (SetInitialPasswordCommand in neo4j-security): a one-user auth.ini that Neo4j reads once, when it creates
 * the system database. Only the salted hash is written.
 */
final class InitialPassword {

    private InitialPassword() {}

    /** The auth.ini of a Neo4j home, in data/dbms/. */
    static Path file(Path home) {
        Config config = Config.newBuilder().set(GraphDatabaseSettings.neo4j_home, home).build();
        return CommunitySecurityModule.getInitialUserRepositoryFile(config);
    }

    static void write(Path home, String password) throws Exception {
        Path file = file(home);
        try (FileSystemAbstraction fs = new DefaultFileSystemAbstraction()) {
            fs.mkdirs(file.getParent());
            if (fs.fileExists(file)) {
                fs.deleteFile(file);
            }
            FileUserRepository repo = new FileUserRepository(
                    fs, file, NullLogProvider.getInstance(), EmptyMemoryTracker.INSTANCE);
            repo.start();
            SystemGraphCredential credential = SystemGraphCredential.createCredentialForPassword(
                    password.getBytes(StandardCharsets.UTF_8), new SecureHasher());
            // name, id (assigned by Neo4j), credential, passwordChangeRequired, suspended
            repo.create(new User("neo4j", null, credential, false, false));
            repo.shutdown();
        }
    }
}
