"""A TCP server with a bounded lifetime for the integration tests (run as a script):
`tcp_server.py ADDRESS PORT REPLY LIFETIME` answers every connection with
"<REPLY> <peer address>" and closes it; prints "ready" once it listens (an IPv6 ADDRESS: an IPv6 socket)."""

import socket
import sys
import time

address, port, reply, lifetime = sys.argv[1], int(sys.argv[2]), sys.argv[3], float(sys.argv[4])
srv = socket.socket(socket.AF_INET6 if ":" in address else socket.AF_INET)
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind((address, port))
srv.listen(8)
srv.settimeout(0.2)
print("ready", flush=True)
deadline = time.monotonic() + lifetime
while time.monotonic() < deadline:
    try:
        conn, peer = srv.accept()
    except socket.timeout:
        continue
    with conn:
        conn.sendall(f"{reply} {peer[0]}".encode())
