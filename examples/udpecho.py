"""A UDP echo server and client for the examples (stand-ins for a DNS resolver or a syslog collector).

    python3 examples/udpecho.py serve PORT        # answers each datagram with itself + " from <sender>"
    python3 examples/udpecho.py send HOST PORT TEXT   # prints the answer (exit 1 after 2 s without one)
"""

import socket
import sys


def serve(port: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("0.0.0.0", port))
        while True:
            data, peer = s.recvfrom(4096)
            s.sendto(data + b" from " + peer[0].encode(), peer)


def send(host: str, port: int, text: str) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(2)
        s.sendto(text.encode(), (host, port))
        try:
            print(s.recv(4096).decode())
        except OSError as err:
            sys.exit(f"no answer from {host}:{port}: {err}")


if __name__ == "__main__":
    if sys.argv[1:2] == ["serve"] and len(sys.argv) == 3:
        serve(int(sys.argv[2]))
    elif sys.argv[1:2] == ["send"] and len(sys.argv) == 5:
        send(sys.argv[2], int(sys.argv[3]), sys.argv[4])
    else:
        sys.exit(__doc__)
