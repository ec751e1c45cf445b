"""Listen on host:port pairs given as arguments, accept and close connections.

``host:port=TEXT`` sends TEXT and a CRLF first (a banner, as SSH or SMTP
servers do), for scanners that grab banners. Started by the namespace lab
inside a network namespace; prints "ready" once every socket listens, then
serves until killed.
"""

import selectors
import socket
import sys


def main(specs: list[str]) -> None:
    selector = selectors.DefaultSelector()
    for spec in specs:
        address, _, banner = spec.partition("=")
        host, port = address.rsplit(":", 1)
        sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, int(port)))
        sock.listen(256)
        sock.setblocking(False)
        selector.register(sock, selectors.EVENT_READ, (banner + "\r\n").encode() if banner else b"")
    print("ready", flush=True)
    while True:
        for key, _ in selector.select():
            try:
                conn, _ = key.fileobj.accept()
                if key.data:
                    conn.sendall(key.data)
                conn.close()
            except OSError:
                pass


if __name__ == "__main__":
    main(sys.argv[1:])
