"""A tiny web server for the examples: `python3 examples/webserver.py PORT [TEXT]`.

Like `python3 -m http.server`, but without its reverse DNS lookup at start
(which hangs in a namespace with no DNS), and it answers with TEXT.
"""

import http.server
import socket
import socketserver
import sys

port = int(sys.argv[1])
text = (sys.argv[2] if len(sys.argv) > 2 else "hello") + "\n"


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = text.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


class Server(socketserver.ThreadingTCPServer):
    address_family = socket.AF_INET6  # bound to "::", it takes IPv4 too (as ::ffff:a.b.c.d): both families
    allow_reuse_address = True


with Server(("::", port), Handler) as server:
    server.serve_forever()
