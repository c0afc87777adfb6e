"""Small helpers shared by tests."""

from __future__ import annotations

import selectors
import socket
import struct
import threading


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on ``host`` that nothing listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def free_ports(count: int, host: str = "127.0.0.1") -> list[int]:
    """``count`` distinct free ports (all held open while choosing, so none is picked twice)."""
    socks = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(count)]
    try:
        for sock in socks:
            sock.bind((host, 0))
        return [int(sock.getsockname()[1]) for sock in socks]
    finally:
        for sock in socks:
            sock.close()


def counts(driver) -> tuple[int, int]:
    """(nodes, relationships) in the database: what a refused batch must leave unchanged."""
    records, _, _ = driver.execute_query(
        "CALL () { MATCH (n) RETURN count(n) AS nodes } CALL () { MATCH ()-[r]->() RETURN count(r) AS rels } "
        "RETURN nodes, rels"
    )
    return records[0]["nodes"], records[0]["rels"]


def scalar(driver, query_text: str, **params):
    records, _, _ = driver.execute_query(query_text, params)
    return records[0][0]


class TcpProxy:
    """A TCP forwarder to a real server that a test can take down: ``down()`` resets every connection and
    stops listening (what clients see when the server process dies), ``hang()`` keeps connections open but
    forwards nothing (a server that stopped answering), ``up()`` listens and forwards again.

    One thread owns every socket and serves them with a selector; ``up``/``down``/``hang`` are commands
    that thread carries out before they return. Closing sockets from another thread while pump threads
    are blocked on them is racy (a closed descriptor can be reused by the next accept while a stale pump
    still reads from it), and a forwarder that loses bytes leaves its client waiting for a reply forever.
    """

    def __init__(self, target_host: str, target_port: int):
        self.target = (target_host, target_port)
        self.port = free_port()
        self.hung = False
        self._selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._selector.register(self._wake_r, selectors.EVENT_READ, None)
        self._commands: list[tuple[str, threading.Event]] = []
        self._commands_lock = threading.Lock()
        self._listener: socket.socket | None = None
        self._peer: dict[socket.socket, socket.socket | None] = {}  # None: accepted while hung, not yet joined
        self._outgoing: dict[socket.socket, bytearray] = {}  # bytes read, not yet written to this socket
        self._held: dict[socket.socket, bytearray] = {}  # bytes read while hung, for this socket's peer
        threading.Thread(target=self._serve, daemon=True, name=f"tcp-proxy-{self.port}").start()
        self.up()

    # --- commands (any thread) ----------------------------------------------------------------------

    def up(self) -> None:
        self._command("up")

    def hang(self) -> None:
        self._command("hang")

    def down(self) -> None:
        self._command("down")

    def _command(self, name: str) -> None:
        done = threading.Event()
        with self._commands_lock:
            self._commands.append((name, done))
        self._wake_w.send(b"!")
        if not done.wait(10):
            raise RuntimeError(f"the proxy on port {self.port} did not carry out {name!r} within 10 s")

    # --- the serving thread ---------------------------------------------------------------------------

    def _serve(self) -> None:
        while True:
            for key, ready in self._selector.select():
                sock = key.fileobj
                if sock is self._wake_r:
                    self._run_commands()
                elif sock is self._listener:
                    self._accept()
                elif sock in self._peer:
                    self._service(sock, ready)

    def _run_commands(self) -> None:
        try:
            while self._wake_r.recv(4096):
                pass
        except BlockingIOError:
            pass
        with self._commands_lock:
            commands, self._commands = self._commands, []
        for name, done in commands:
            if name == "up":
                self.hung = False
                if self._listener is None:
                    self._listen()
                for client in [c for c, peer in self._peer.items() if peer is None]:
                    self._join(client)
                for sock, data in list(self._held.items()):
                    peer = self._peer.get(sock)
                    if peer is not None:
                        self._send(peer, bytes(data))
                self._held.clear()
            elif name == "hang":
                self.hung = True
            elif name == "down":
                if self._listener is not None:
                    self._selector.unregister(self._listener)
                    self._listener.close()
                    self._listener = None
                for sock in list(self._peer):
                    self._reset(sock)
                self._held.clear()
            done.set()

    def _listen(self) -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        listener.setblocking(False)
        self._listener = listener
        self._selector.register(listener, selectors.EVENT_READ, None)

    def _accept(self) -> None:
        try:
            client, _ = self._listener.accept()
        except (BlockingIOError, OSError):
            return
        client.setblocking(False)
        self._peer[client] = None
        self._selector.register(client, selectors.EVENT_READ, None)
        if not self.hung:
            self._join(client)

    def _join(self, client: socket.socket) -> None:
        """Connects an accepted client to the target (a refused target resets the client)."""
        try:
            upstream = socket.create_connection(self.target, timeout=5)
        except OSError:
            self._reset(client)
            return
        upstream.setblocking(False)
        self._peer[client], self._peer[upstream] = upstream, client
        self._selector.register(upstream, selectors.EVENT_READ, None)

    def _service(self, sock: socket.socket, events: int) -> None:
        if events & selectors.EVENT_WRITE and not self._flush(sock):
            return
        if not events & selectors.EVENT_READ:
            return
        try:
            data = sock.recv(65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:  # one side closed: close the other too, as a dead server's clients see
            self._close_pair(sock)
            return
        peer = self._peer.get(sock)
        if self.hung or peer is None:
            self._held.setdefault(sock, bytearray()).extend(data)
        else:
            self._send(peer, data)

    def _send(self, sock: socket.socket, data: bytes) -> None:
        self._outgoing.setdefault(sock, bytearray()).extend(data)
        self._flush(sock)

    def _flush(self, sock: socket.socket) -> bool:
        """Writes what is queued for ``sock``; False when the socket failed and was closed."""
        buffer = self._outgoing.get(sock)
        try:
            while buffer:
                sent = sock.send(buffer)
                del buffer[:sent]
        except BlockingIOError:
            pass
        except OSError:
            self._close_pair(sock)
            return False
        events = selectors.EVENT_READ | (selectors.EVENT_WRITE if buffer else 0)
        self._selector.modify(sock, events, None)
        return True

    def _close_pair(self, sock: socket.socket) -> None:
        peer = self._peer.get(sock)
        self._close(sock)
        if peer is not None:
            self._close(peer)

    def _reset(self, sock: socket.socket) -> None:
        try:  # linger 0: close with a reset, as the kernel does for a dead process
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        self._close(sock)

    def _close(self, sock: socket.socket) -> None:
        if sock not in self._peer:
            return
        del self._peer[sock]
        self._outgoing.pop(sock, None)
        self._held.pop(sock, None)
        self._selector.unregister(sock)
        sock.close()
