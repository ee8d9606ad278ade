"""A UDP echo server with a bounded lifetime for the integration tests (run as a script):
`udp_echo.py ADDRESS PORT LIFETIME` answers a datagram of up to 512 bytes with itself +
" <peer address>", a bigger one with "<size> bytes <peer address>"; prints "ready" once bound."""

import socket
import sys
import time

address, port, lifetime = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((address, port))
s.settimeout(0.2)
print("ready", flush=True)
deadline = time.monotonic() + lifetime
while time.monotonic() < deadline:
    try:
        data, peer = s.recvfrom(65535)
    except socket.timeout:
        continue
    head = data if len(data) <= 512 else f"{len(data)} bytes".encode()
    s.sendto(head + f" {peer[0]}".encode(), peer)
