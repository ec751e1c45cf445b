"""Listen on host:port pairs given as arguments, accept and close connections.

Started by the namespace lab inside a network namespace; prints "ready" once
every socket listens, then serves until killed.
"""

import selectors
import socket
import sys


def main(specs: list[str]) -> None:
    selector = selectors.DefaultSelector()
    for spec in specs:
        host, port = spec.rsplit(":", 1)
        sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, int(port)))
        sock.listen(256)
        sock.setblocking(False)
        selector.register(sock, selectors.EVENT_READ)
    print("ready", flush=True)
    while True:
        for key, _ in selector.select():
            try:
                conn, _ = key.fileobj.accept()
                conn.close()
            except OSError:
                pass


if __name__ == "__main__":
    main(sys.argv[1:])
