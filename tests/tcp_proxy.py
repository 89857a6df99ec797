"""A TCP proxy between a test's clients and PostgreSQL, to drop the network for real.

Clients connect to `proxy.port`; every connection is piped to the server by two threads.
`drop_connections_after(n)` arms a one-time network drop: once `n` bytes have gone from the
server to a client, every open connection is reset (RST, as when a link or a NAT entry
dies), while new connections are still accepted (the network came back). `stop()` (or a drop
`for_good`) also closes the listening socket, so a later connect is refused (the server is
gone for good).
"""

from __future__ import annotations

import select
import socket
import struct
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress

_CHUNK = 64 * 1024
_POLL_SECONDS = 0.05


def _reset(sock: socket.socket) -> None:
    """Close with RST instead of FIN: the peer sees 'connection reset', not a clean end."""
    with suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


class TcpProxy:
    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(_POLL_SECONDS)
        self.port: int = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._generation = 0  # bumped by each drop; a connection of an older one is reset
        self._threads: list[threading.Thread] = []
        self._drop_after: int | None = None
        self._refuse_after_drop = False
        self.bytes_to_clients = 0
        self.drops = 0
        self.connections = 0
        self._accepting = threading.Thread(target=self._accept, name="tcp-proxy-accept")
        self._accepting.start()

    def drop_connections_after(self, byte_count: int, *, for_good: bool = False) -> None:
        """Reset every connection once `byte_count` more bytes reached clients; `for_good`
        then refuses every later connection too (the server is gone)."""
        with self._lock:
            self._drop_after = self.bytes_to_clients + byte_count
            self._refuse_after_drop = for_good

    def drop_all(self) -> None:
        """Reset every open connection; new ones are still accepted."""
        with self._lock:
            self._generation += 1
            self.drops += 1

    def _accept(self) -> None:
        while not self._stopping.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            try:
                server = socket.create_connection(self.upstream)
            except OSError:
                _reset(client)
                continue
            with self._lock:
                self.connections += 1
                generation = self._generation
            thread = threading.Thread(
                target=self._relay, args=(client, server, generation), name="tcp-proxy-relay"
            )
            self._threads.append(thread)
            thread.start()
        self._listener.close()

    def _dropped(self, generation: int) -> bool:
        with self._lock:
            return self._stopping.is_set() or generation != self._generation

    def _relay(self, client: socket.socket, server: socket.socket, generation: int) -> None:
        """Copy bytes both ways until either side closes or the connection is dropped."""
        peers = {client: server, server: client}
        try:
            while not self._dropped(generation):
                readable, _, _ = select.select(list(peers), [], [], _POLL_SECONDS)
                for source in readable:
                    data = source.recv(_CHUNK)
                    if not data:
                        return
                    peers[source].sendall(data)
                    if source is server and self._count(len(data)):
                        if self._refuse_after_drop:
                            self._stopping.set()
                        self.drop_all()
        except OSError:
            return
        finally:
            for sock in peers:
                _reset(sock)

    def _count(self, byte_count: int) -> bool:
        """Add bytes sent to a client; True when the armed drop is due (once)."""
        with self._lock:
            self.bytes_to_clients += byte_count
            if self._drop_after is not None and self.bytes_to_clients >= self._drop_after:
                self._drop_after = None
                return True
            return False

    def stop(self) -> None:
        """Refuse new connections, reset the open ones, and join every thread."""
        self._stopping.set()
        self._accepting.join(timeout=10)
        for thread in self._threads:
            thread.join(timeout=10)


@contextmanager
def tcp_proxy(upstream: tuple[str, int] = ("127.0.0.1", 5432)) -> Iterator[TcpProxy]:
    proxy = TcpProxy(upstream)
    try:
        yield proxy
    finally:
        proxy.stop()
