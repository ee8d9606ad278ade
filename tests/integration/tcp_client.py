"""A TCP client for the integration tests (run as a script): `tcp_client.py ADDRESS PORT [TIMEOUT]`
prints what the server sent, or "failed: <reason>" and exits 3 when no connection is made."""

import socket
import sys

address, port = sys.argv[1], int(sys.argv[2])
timeout = float(sys.argv[3]) if len(sys.argv) > 3 else 5.0
try:
    with socket.create_connection((address, port), timeout=timeout) as s:
        data = b""
        while chunk := s.recv(4096):
            data += chunk
except OSError as err:
    print(f"failed: {err.strerror or err}")
    sys.exit(3)
print(data.decode())
