"""A TCP proxy that injects network faults between a client and a real server.

    proxy = FaultProxy(("127.0.0.1", server_port)).start()
    proxy.drop()       # closes every open connection at once (a camera rebooting, a NAT timeout)
    proxy.blackhole()  # keeps connections open but stops moving bytes, new ones included (a dead link)
    proxy.restore()    # forwards again

Each accepted connection gets one thread per direction.
"""

from __future__ import annotations

import socket
import threading


class FaultProxy:
    def __init__(self, upstream: tuple[str, int]):
        self.upstream = upstream
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._connections: list[tuple[socket.socket, socket.socket]] = []
        self._flowing = threading.Event()
        self._flowing.set()
        self._closed = False
        self.accepted = 0

    def start(self) -> FaultProxy:
        threading.Thread(target=self._accept, name="proxy-accept", daemon=True).start()
        return self

    def drop(self) -> None:
        with self._lock:
            connections, self._connections = self._connections, []
        for pair in connections:
            for sock in pair:
                _close(sock)

    def blackhole(self) -> None:
        self._flowing.clear()

    def restore(self) -> None:
        self._flowing.set()

    def close(self) -> None:
        self._closed = True
        _close(self._listener)
        self.restore()
        self.drop()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            self.accepted += 1
            try:
                server = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                _close(client)  # upstream down: the client sees a refused/closed connection
                continue
            server.settimeout(None)
            with self._lock:
                self._connections.append((client, server))
            for source, sink in ((client, server), (server, client)):
                threading.Thread(target=self._pipe, args=(source, sink), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                # A blackholed link holds the bytes it received and never delivers them, as a dead
                # route does; after restore() this connection is considered broken and is dropped.
                if not self._flowing.is_set():
                    self._flowing.wait()
                    break
                sink.sendall(data)
        except OSError:
            pass
        _close(source)
        _close(sink)


def _close(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    try:
        sock.close()
    except OSError:
        pass
