"""A do-nothing OTLP/HTTP collector for overhead runs: answers every POST
with 200 and an empty body, counting bytes, so that trace export costs the
server what it would against a real collector. Loopback only.

    python3 bench/otlp-sink.py PORT
"""

import signal
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

received = 0


class Sink(BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802 (http.server's naming)
        global received
        length = int(self.headers.get("content-length", 0))
        received += len(self.rfile.read(length))
        self.send_response(200)
        self.send_header("content-type", "application/x-protobuf")
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


if __name__ == "__main__":
    # SIGTERM ends it like Ctrl-C, so the count is printed.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    server = ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Sink)
    try:
        server.serve_forever()
    finally:
        print(f"otlp-sink received {received} bytes", file=sys.stderr)
