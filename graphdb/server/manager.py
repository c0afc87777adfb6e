"""Start, stop and inspect tailor's local Neo4j 5.26 Community server.

The server is a small Java program (``graphdb/server/java``) that runs Neo4j embedded with Bolt and HTTP
(Neo4j Browser at ``/browser/``) bound to 127.0.0.1 and authentication on. It is built with Maven on first
use and runs detached from the caller (its own session), so ``tailor db start`` can exit and leave it up.

Layout of a data directory::

    <data_dir>/auth/password        neo4j's password (0600, dir 0700); the server reads it from here
    <data_dir>/db/                  Neo4j home: databases, transaction logs
    <data_dir>/logs/                debug.log, query.log, ... and tailor-server.out (stdout/stderr)
    <data_dir>/server.json          pid and ports of the running server

The password is never on a command line, in the child's environment or in a log. The whole data
directory is its owner's only (folders 0700, files 0600): the JVM runs with umask 077, and a start
tightens what an older version or a hand-made copy left readable (:func:`owner_only`).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import functools
import hashlib
import ipaddress
import json
import os
import re
import secrets
import shutil
import signal
import socket
import stat
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

from readers.files import atomic_write

__all__ = [
    "LocalServer",
    "ServerError",
    "ServerStatus",
    "load_or_create_password",
    "owner_only",
    "server_classpath",
]

JAVA_DIR = Path(__file__).resolve().parent / "java"
TARGET_DIR = JAVA_DIR / "target"
SERVER_JAR = TARGET_DIR / "tailor-neo4j-server.jar"
LIB_DIR = TARGET_DIR / "lib"
MAIN_CLASS = "ai.tailor.server.TailorNeo4jServer"
READY_MARKER = "TAILOR_SERVER_READY"
MIN_JAVA = 17
MIN_PASSWORD_LENGTH = 8  # Neo4j's default dbms.security.auth_minimum_password_length

# Neo4j (Netty, page cache) reaches into JDK internals; these are the flags its own launcher passes.
JVM_FLAGS = [
    "--add-opens=java.base/java.nio=ALL-UNNAMED",
    "--add-opens=java.base/java.io=ALL-UNNAMED",
    "--add-opens=java.base/sun.nio.ch=ALL-UNNAMED",
    "--add-opens=java.base/java.lang=ALL-UNNAMED",
    "--add-opens=java.base/java.util=ALL-UNNAMED",
    "--add-opens=java.base/java.util.concurrent=ALL-UNNAMED",
    "-Dio.netty.tryReflectionSetAccessible=true",
    "-Djdk.nio.maxCachedBufferSize=1024",
    "-XX:+UseG1GC",
    "-XX:-OmitStackTraceInFastThrow",
    # A JVM out of heap is better dead (and restarted) than half-alive holding the store.
    "-XX:+ExitOnOutOfMemoryError",
]
DEFAULT_HEAP = "2g"  # env TAILOR_NEO4J_HEAP
DEFAULT_PAGECACHE = "512m"  # env TAILOR_NEO4J_PAGECACHE
_MEMORY_RE = re.compile(r"^\d+[kKmMgG]?$")
_LOG_TAIL_LINES = 30


class ServerError(RuntimeError):
    """The local Neo4j server could not be built, started or stopped; the message says what to do."""


@dataclass
class ServerStatus:
    running: bool
    pid: int | None
    bolt_port: int | None
    http_port: int | None
    data_dir: Path
    already_running: bool = False

    @property
    def uri(self) -> str:
        return f"bolt://127.0.0.1:{self.bolt_port}"

    @property
    def browser_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}/browser/"


# --------------------------------------------------------------------------------------------- build


def _java_executable() -> str:
    """``$JAVA_HOME/bin/java`` when JAVA_HOME is set, else ``java`` on PATH."""
    java_home = os.environ.get("JAVA_HOME")
    if java_home and (Path(java_home) / "bin" / "java").is_file():
        return str(Path(java_home) / "bin" / "java")
    found = shutil.which("java")
    if not found:
        raise ServerError(
            f"Java {MIN_JAVA}+ not found on PATH; install OpenJDK {MIN_JAVA} "
            f"(e.g. `apt-get install openjdk-{MIN_JAVA}-jdk-headless`) or set JAVA_HOME"
        )
    return found


@functools.lru_cache(maxsize=8)
def _java_version_text(java: str) -> str:
    try:
        done = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ServerError(f"could not run `{java} -version`: {exc}") from exc
    return (done.stderr + done.stdout).strip()


def _java_major(java: str) -> int:
    text = _java_version_text(java)
    match = re.search(r'version "(\d+)(?:\.(\d+))?', text)
    if not match:
        raise ServerError(f"could not read the Java version from `{java} -version`: {text!r}")
    major = int(match.group(1))
    return int(match.group(2)) if major == 1 else major  # "1.8.0" is Java 8


def _checked_java() -> str:
    java = _java_executable()
    major = _java_major(java)
    if major < MIN_JAVA:
        raise ServerError(
            f"{java} is Java {major}; Neo4j 5.26 needs Java {MIN_JAVA} or 21. "
            f"Install OpenJDK {MIN_JAVA} or point JAVA_HOME at one"
        )
    return java


def _needs_build() -> bool:
    if not SERVER_JAR.is_file() or not LIB_DIR.is_dir() or not any(LIB_DIR.glob("neo4j-*.jar")):
        return True
    built = SERVER_JAR.stat().st_mtime
    sources = [JAVA_DIR / "pom.xml", *(JAVA_DIR / "src").rglob("*.java")]
    return any(p.stat().st_mtime > built for p in sources if p.exists())


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """An exclusive advisory lock, so two processes do not build or start the same thing at once."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def server_classpath(build: bool = True) -> str:
    """Classpath of the server (its jar plus ``target/lib/*``); builds it with Maven when missing or stale."""
    if _needs_build():
        if not build:
            raise ServerError(
                f"the Neo4j server is not built; run `mvn -q -f {JAVA_DIR / 'pom.xml'} package` "
                "or call server_classpath(build=True)"
            )
        _checked_java()
        mvn = shutil.which("mvn")
        if not mvn:
            raise ServerError(
                "Maven (mvn) not found on PATH; it builds the local Neo4j server once "
                "(install it, e.g. `apt-get install maven`, with access to Maven Central)"
            )
        with _file_lock(TARGET_DIR / ".build.lock"):
            if _needs_build():  # another process may have built it while we waited
                cmd = [mvn, "-q", "-B", "-f", str(JAVA_DIR / "pom.xml"), "package"]
                try:
                    done = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
                except subprocess.TimeoutExpired as exc:
                    raise ServerError("building the Neo4j server with Maven took over 30 minutes") from exc
                if done.returncode != 0 or not SERVER_JAR.is_file():
                    tail = "\n".join((done.stdout + done.stderr).splitlines()[-_LOG_TAIL_LINES:])
                    raise ServerError(
                        f"building the Neo4j server failed (`{' '.join(cmd)}`, exit {done.returncode}); "
                        f"Maven needs Maven Central the first time.\n{tail}"
                    )
                SERVER_JAR.touch()  # newer than the sources even when Maven had nothing to recompile
    return f"{SERVER_JAR}{os.pathsep}{LIB_DIR / '*'}"


def _cds_archive(java: str) -> Path:
    """Where the class-data-sharing archive for this JVM and this build lives (in target/).

    Loading Neo4j's ~200 jars dominates start-up on small machines; a dynamic AppCDS archive, written by
    the JVM when the first server exits, cuts later starts by about a third. The name hashes the JVM and
    the build, so a rebuilt server or another JDK gets its own archive (a mismatched one is only ignored).
    """
    key = hashlib.sha256()
    key.update(os.path.realpath(java).encode())
    key.update(_java_version_text(java).encode())
    for jar in [SERVER_JAR, *sorted(LIB_DIR.glob("*.jar"))]:
        key.update(f"{jar.name}:{jar.stat().st_mtime_ns}".encode())
    return TARGET_DIR / f"cds-{key.hexdigest()[:16]}.jsa"


def _cds_flags(java: str) -> tuple[list[str], Path | None]:
    """JVM flags that use the archive, or that write it at exit (then also the file it will be written to)."""
    if os.environ.get("TAILOR_NEO4J_CDS", "0") == "0":
        return [], None
    archive = _cds_archive(java)
    quiet = "-Xlog:cds*=error"  # the JVM lists every class it cannot archive (signed jars...) otherwise
    if archive.is_file():
        return [f"-XX:SharedArchiveFile={archive}", quiet], None
    for old in TARGET_DIR.glob(".cds-*.tmp"):  # left by servers that were killed while dumping
        if time.time() - old.stat().st_mtime > 3600:
            with contextlib.suppress(OSError):
                old.unlink()
    pending = TARGET_DIR / f".{archive.stem}.{secrets.token_hex(4)}.tmp"
    return [f"-XX:ArchiveClassesAtExit={pending}", quiet], pending


def _adopt_cds_archive(pending: Path) -> None:
    """Moves an archive the JVM wrote at exit into place (the first one wins), after the JVM is gone."""
    final = pending.parent / (pending.name.split(".")[1] + ".jsa")
    try:
        if pending.is_file() and pending.stat().st_size > 0 and not final.exists():
            for stale in TARGET_DIR.glob("cds-*.jsa"):  # archives of earlier builds
                stale.unlink()
            os.replace(pending, final)
    except OSError:
        pass
    finally:
        with contextlib.suppress(OSError):
            pending.unlink()


# ------------------------------------------------------------------------------------ permissions

PRIVATE_UMASK = 0o077  # what the server creates is its owner's only


def owner_only(root: Path) -> int:
    """Folders under ``root`` (itself included) to 0700 and files to 0600, where they allow more (symlinks
    are left alone); returns how many were changed."""
    changed = 0
    for folder, dirs, files in os.walk(root):
        for name, mode in [(folder, 0o700)] + [(os.path.join(folder, f), 0o600) for f in files]:
            try:
                st = os.lstat(name)
            except FileNotFoundError:  # the server removes files as it runs
                continue
            if not stat.S_ISLNK(st.st_mode) and st.st_mode & 0o077:
                os.chmod(name, stat.S_IMODE(st.st_mode) & ~0o077 | (mode & 0o700))
                changed += 1
        dirs[:] = [d for d in dirs if not os.path.islink(os.path.join(folder, d))]
    return changed


# ------------------------------------------------------------------------------------------ password


def _write_private(path: Path, text: str) -> None:
    """Writes ``text`` to ``path`` atomically (temp file + rename), readable by the owner only."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    atomic_write(path, text, mode=0o600)


def _password_file(data_dir: Path) -> Path:
    return Path(data_dir) / "auth" / "password"


def load_or_create_password(data_dir: Path) -> str:
    """The neo4j user's password for the server in ``data_dir``.

    ``NEO4J_PASSWORD`` when set (stored, and applied by the server at its next start); else the stored one;
    else a new random one, stored on first use in ``<data_dir>/auth/password`` (0600, directory 0700).
    """
    path = _password_file(data_dir)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)
    stored = path.read_text(encoding="utf-8").rstrip("\r\n") if path.is_file() else None
    wanted = os.environ.get("NEO4J_PASSWORD") or stored or secrets.token_urlsafe(24)
    if len(wanted) < MIN_PASSWORD_LENGTH:
        raise ServerError(
            f"NEO4J_PASSWORD is shorter than {MIN_PASSWORD_LENGTH} characters, which Neo4j refuses; "
            "use a longer one, or unset it to let tailor generate one"
        )
    if wanted != stored:
        _write_private(path, wanted)
    elif path.stat().st_mode & 0o077:
        os.chmod(path, 0o600)  # someone loosened it
    return wanted


# ------------------------------------------------------------------------------------------ processes


def _cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def _is_our_server(pid: int, data_dir: Path) -> bool:
    """True when ``pid`` is alive and is this module's Java server for ``data_dir`` (not a recycled pid)."""
    args = _cmdline(pid)  # empty for dead processes and zombies
    if MAIN_CLASS not in args:
        return False
    try:
        return Path(args[args.index("--data-dir") + 1]) == data_dir
    except (ValueError, IndexError):
        return False


def _server_pids(data_dir: Path) -> list[int]:
    """All live server processes for ``data_dir``, found in /proc (also those whose state file is gone)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and _is_our_server(int(entry.name), data_dir):
            pids.append(int(entry.name))
    return sorted(pids)


def _reap(pid: int) -> None:
    """Collects the exit status when the server is our own child, so it does not linger as a zombie."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def _port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # Netty binds with SO_REUSEADDR too: TIME_WAIT leftovers are no conflict, a listener is.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                return False
            raise
    return True


def _memory_setting(env: str, default: str) -> str:
    value = os.environ.get(env, default).strip()
    if not _MEMORY_RE.match(value):
        raise ServerError(f"{env}={value!r} is not a memory size like 512m or 2g")
    return value


class LocalServer:
    """tailor's own Neo4j server for one data directory."""

    def __init__(
        self, data_dir: Path, bolt_port: int = 7687, http_port: int = 7474, host: str = "127.0.0.1"
    ) -> None:
        try:
            loopback = ipaddress.ip_address(host).is_loopback and ":" not in host
        except ValueError:
            loopback = False
        if not loopback:
            # Neo4j's HTTP and Bolt would be open to the network; a shared server is a real deployment's job.
            raise ServerError(
                f"the local server listens on an IPv4 loopback address only (e.g. 127.0.0.1), not {host!r}"
            )
        self.data_dir = Path(data_dir).expanduser().resolve()
        self.bolt_port = int(bolt_port)
        self.http_port = int(http_port)
        self.host = host
        self._proc: subprocess.Popen[bytes] | None = None

    # paths -----------------------------------------------------------------------------------
    @property
    def state_file(self) -> Path:
        return self.data_dir / "server.json"

    @property
    def log_dir(self) -> Path:
        return self.data_dir / "logs"

    @property
    def log_file(self) -> Path:
        return self.log_dir / "tailor-server.out"

    @property
    def password_file(self) -> Path:
        return _password_file(self.data_dir)

    def password(self) -> str:
        return load_or_create_password(self.data_dir)

    # state -----------------------------------------------------------------------------------
    def _read_state(self) -> dict | None:
        try:
            return json.loads(self.state_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None

    def _write_state(self, pid: int, cds_pending: Path | None = None) -> None:
        state = {
            "pid": pid,
            "cds_pending": str(cds_pending) if cds_pending else None,
            "bolt_port": self.bolt_port,
            "http_port": self.http_port,
            "host": self.host,
            "started_at": time.time(),
        }
        atomic_write(self.state_file, json.dumps(state))

    def _clear_state(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.state_file.unlink()

    def status(self) -> ServerStatus:
        """Whether the server for this data dir runs; a stale or foreign pid in server.json counts as not."""
        state = self._read_state()
        if state and isinstance(state.get("pid"), int) and _is_our_server(state["pid"], self.data_dir):
            return ServerStatus(
                True, state["pid"], state.get("bolt_port"), state.get("http_port"), self.data_dir
            )
        # No (valid) state file: a server may still run for this data dir, e.g. after server.json was removed.
        pids = _server_pids(self.data_dir)
        if pids:
            args = _cmdline(pids[0])
            return ServerStatus(
                True, pids[0], _arg_int(args, "--bolt-port"), _arg_int(args, "--http-port"), self.data_dir
            )
        return ServerStatus(False, None, None, None, self.data_dir)

    # start -----------------------------------------------------------------------------------
    def start(self, timeout: float = 180.0) -> ServerStatus:
        """Starts the server and waits until Bolt answers ``RETURN 1`` with the stored password."""
        self.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        with _file_lock(self.data_dir / ".server.lock"):
            current = self.status()
            if current.running:
                return replace(current, already_running=True)
            self._clear_state()  # stale
            owner_only(self.data_dir)
            self._check_ports()
            classpath = server_classpath(build=True)
            java = _checked_java()
            self.password()  # creates the password file the server reads
            heap = _memory_setting("TAILOR_NEO4J_HEAP", DEFAULT_HEAP)
            pagecache = _memory_setting("TAILOR_NEO4J_PAGECACHE", DEFAULT_PAGECACHE)
            cds_pending = self._spawn(java, classpath, heap, pagecache)
            assert self._proc is not None
            self._write_state(self._proc.pid, cds_pending)
            try:
                self._wait_ready(timeout)
            except BaseException:
                self._kill_failed_start()
                raise
            return ServerStatus(True, self._proc.pid, self.bolt_port, self.http_port, self.data_dir)

    def _check_ports(self) -> None:
        if self.bolt_port == self.http_port:
            raise ServerError(f"Bolt and HTTP cannot share port {self.bolt_port}; choose two different ports")
        for name, port in (("Bolt", self.bolt_port), ("HTTP", self.http_port)):
            if not _port_free(self.host, port):
                raise ServerError(
                    f"{name} port {port} on {self.host} is already in use (another Neo4j?); stop that "
                    f"process or choose another port (e.g. `--{name.lower()}-port`)"
                )

    def _spawn(self, java: str, classpath: str, heap: str, pagecache: str) -> Path | None:
        """Starts the JVM; returns the CDS archive it will write at exit, if any."""
        self.log_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        cds, cds_pending = _cds_flags(java)
        if self.log_file.exists():  # keep the previous run's output for post-mortems
            os.replace(self.log_file, self.log_file.with_suffix(".out.1"))
        cmd = [
            java,
            f"-Xmx{heap}",
            *JVM_FLAGS,
            *cds,
            "-cp",
            classpath,
            MAIN_CLASS,
            "--data-dir",
            str(self.data_dir),
            "--password-file",
            str(self.password_file),
            "--bolt-port",
            str(self.bolt_port),
            "--http-port",
            str(self.http_port),
            "--host",
            self.host,
            "--pagecache",
            pagecache,
        ]
        # The child reads the password from its file only: keep it out of /proc/<pid>/environ too.
        env = {k: v for k, v in os.environ.items() if k != "NEO4J_PASSWORD"}
        log_fd = os.open(self.log_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        with open(log_fd, "ab") as log:
            self._proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=self.data_dir,
                start_new_session=True,  # survives the caller (and its Ctrl-C)
                close_fds=True,
                umask=PRIVATE_UMASK,
            )
        return cds_pending

    def _wait_ready(self, timeout: float) -> None:
        import neo4j
        from neo4j.exceptions import AuthError, Neo4jError, ServiceUnavailable, SessionExpired

        assert self._proc is not None
        deadline = time.monotonic() + timeout
        password = self.password()
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            code = self._proc.poll()
            if code is not None:
                raise ServerError(
                    f"the Neo4j server exited with code {code} while starting "
                    f"(log: {self.log_file}):\n{self.log_tail()}"
                )
            if READY_MARKER in self._log_text():
                try:
                    with neo4j.GraphDatabase.driver(
                        self.status_uri, auth=("neo4j", password), connection_timeout=5
                    ) as driver:
                        records, _, _ = driver.execute_query("RETURN $one AS one", one=1)
                        if records and records[0]["one"] == 1:
                            return
                except AuthError as exc:
                    raise ServerError(
                        f"the server started but refused the password in {self.password_file}; "
                        f"if it was changed by hand, restore it or remove {self.data_dir / 'db'} "
                        "to start over (this deletes the data)"
                    ) from exc
                except (ServiceUnavailable, SessionExpired, Neo4jError, OSError) as exc:
                    last_error = exc
            time.sleep(0.5)
        raise ServerError(
            f"the Neo4j server did not answer on {self.status_uri} within {timeout:.0f} s"
            f"{f' (last error: {last_error})' if last_error else ''}; "
            f"log: {self.log_file}:\n{self.log_tail()}"
        )

    @property
    def status_uri(self) -> str:
        return f"bolt://{self.host}:{self.bolt_port}"

    def _kill_failed_start(self) -> None:
        pending = self._cds_pending()
        if self._proc is not None and self._proc.poll() is None:
            self._terminate(self._proc.pid, timeout=20.0)
        if pending is not None:
            with contextlib.suppress(OSError):
                pending.unlink()  # an archive of a failed start is not one to trust
        self._clear_state()

    def _cds_pending(self) -> Path | None:
        pending = (self._read_state() or {}).get("cds_pending")
        return Path(pending) if isinstance(pending, str) and pending else None

    # stop ------------------------------------------------------------------------------------
    def stop(self, timeout: float = 60.0) -> bool:
        """SIGTERM (clean shutdown), SIGKILL after ``timeout``; False when no server was running."""
        with _file_lock(self.data_dir / ".server.lock"):
            pids = set(_server_pids(self.data_dir))
            current = self.status()
            if current.running and current.pid is not None:
                pids.add(current.pid)
            pending = self._cds_pending()
            for pid in sorted(pids):
                self._terminate(pid, timeout)
            if pending is not None:
                _adopt_cds_archive(pending)
            self._clear_state()
            return bool(pids)

    def _terminate(self, pid: int, timeout: float) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        if self._wait_gone(pid, timeout):
            return
        # Still there: kill its whole session (start_new_session made it the group leader).
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        if not self._wait_gone(pid, 15.0):
            raise ServerError(f"could not stop the Neo4j server (pid {pid}); kill it by hand")

    def _wait_gone(self, pid: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while True:
            if self._proc is not None and self._proc.pid == pid:
                self._proc.poll()  # reaps our own child
            else:
                _reap(pid)
            if not _is_our_server(pid, self.data_dir):
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.2)

    # logs ------------------------------------------------------------------------------------
    def _log_text(self) -> str:
        try:
            return self.log_file.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""

    def log_tail(self, lines: int = _LOG_TAIL_LINES) -> str:
        return "\n".join(self._log_text().splitlines()[-lines:])


def _arg_int(args: list[str], flag: str) -> int | None:
    try:
        return int(args[args.index(flag) + 1])
    except (ValueError, IndexError):
        return None
