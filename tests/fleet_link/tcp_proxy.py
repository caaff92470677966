"""A loopback TCP proxy that can cut the path: bytes stop flowing both ways, as in a
partition (no FIN, no RST), until ``heal()``; connections that lived through a cut are then
closed, as a real TCP stack would after its retransmissions timed out."""

from __future__ import annotations

import selectors
import socket
import threading


class TcpProxy:
    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self._listener = socket.socket()
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(16)
        self._listener.setblocking(False)
        self.port = self._listener.getsockname()[1]
        self._sel = selectors.DefaultSelector()
        self._sel.register(self._listener, selectors.EVENT_READ, None)
        self._peer: dict[socket.socket, socket.socket] = {}
        self._cut = threading.Event()
        self._doomed: set[socket.socket] = set()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="tcp-proxy", daemon=True)

    def start(self) -> TcpProxy:
        self._thread.start()
        return self

    def cut(self) -> None:
        with self._lock:
            self._cut.set()

    def heal(self) -> None:
        with self._lock:
            self._doomed = set(self._peer)
            self._cut.clear()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
        for sock in list(self._peer):
            sock.close()
        self._listener.close()

    def _close_pair(self, sock: socket.socket) -> None:
        other = self._peer.pop(sock, None)
        for s in (sock, other):
            if s is None:
                continue
            self._peer.pop(s, None)
            try:
                self._sel.unregister(s)
            except (KeyError, ValueError):
                pass
            s.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                for sock in list(self._doomed):
                    if sock in self._peer:
                        self._close_pair(sock)
                self._doomed.clear()
            for key, _ in self._sel.select(0.05):
                sock = key.fileobj
                if sock is self._listener:
                    self._accept()
                    continue
                try:
                    data = sock.recv(65536)
                except OSError:
                    data = b""
                if not data:
                    self._close_pair(sock)
                    continue
                if self._cut.is_set():
                    continue  # the partition swallows it
                other = self._peer.get(sock)
                if other is None:
                    continue
                try:
                    other.sendall(data)
                except OSError:
                    self._close_pair(sock)

    def _accept(self) -> None:
        try:
            client, _ = self._listener.accept()
        except BlockingIOError:
            return
        try:
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port), timeout=2)
        except OSError:
            client.close()
            return
        for s in (client, upstream):
            s.setblocking(True)
            self._sel.register(s, selectors.EVENT_READ, None)
        self._peer[client] = upstream
        self._peer[upstream] = client
