"""A loopback TCP relay that can be cut: the database "goes down" for the app without
touching the real server (used by the outage tests and ``benchmarks.load --outage``).

    relay = TcpRelay(("127.0.0.1", 3306)).start()   # the app connects to 127.0.0.1:relay.port
    relay.stop()       # every open connection is reset, new ones are refused
    relay.start()      # the same port answers again

``python -m benchmarks.tcp_relay 13306 127.0.0.1:3306`` runs one in the foreground.
"""

from __future__ import annotations

import argparse
import contextlib
import selectors
import socket
import threading
import time


class TcpRelay:
    """Forwards every connection on ``127.0.0.1:port`` to ``target`` until stopped."""

    def __init__(self, target: tuple[str, int], port: int = 0, host: str = "127.0.0.1") -> None:
        self.target = target
        self.host = host
        self.port = port
        self._listener: socket.socket | None = None
        self._sockets: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._running = threading.Event()

    def start(self) -> TcpRelay:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((self.host, self.port))
        listener.listen(64)
        self.port = listener.getsockname()[1]
        self._listener = listener
        self._running.set()
        threading.Thread(target=self._accept, args=(listener,), daemon=True, name="relay-accept").start()
        return self

    def stop(self) -> None:
        """Refuse new connections and reset the open ones (what a crashed server looks like)."""
        self._running.clear()
        if self._listener is not None:
            with contextlib.suppress(OSError):
                self._listener.close()
            self._listener = None
        with self._lock:
            sockets, self._sockets = self._sockets, set()
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                sock.close()

    def _accept(self, listener: socket.socket) -> None:
        while self._running.is_set():
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._sockets.update((client, upstream))
            threading.Thread(target=self._pipe, args=(client, upstream), daemon=True, name="relay-pipe").start()

    def _pipe(self, a: socket.socket, b: socket.socket) -> None:
        selector = selectors.DefaultSelector()
        selector.register(a, selectors.EVENT_READ, b)
        selector.register(b, selectors.EVENT_READ, a)
        try:
            while self._running.is_set():
                for key, _ in selector.select(timeout=0.5):
                    data = key.fileobj.recv(65536)  # type: ignore[union-attr]
                    if not data:
                        return
                    key.data.sendall(data)
        except (OSError, ValueError):
            return
        finally:
            selector.close()
            for sock in (a, b):
                with contextlib.suppress(OSError):
                    sock.close()
                with self._lock:
                    self._sockets.discard(sock)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("port", type=int)
    parser.add_argument("target", help="host:port")
    args = parser.parse_args()
    host, _, port = args.target.rpartition(":")
    relay = TcpRelay((host or "127.0.0.1", int(port)), port=args.port).start()
    print(f"relaying 127.0.0.1:{relay.port} -> {args.target} (Ctrl-C stops)", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        relay.stop()


if __name__ == "__main__":
    main()
