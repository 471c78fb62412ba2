#!/usr/bin/env python3
"""An update source for tests/integration/fetch_http.sh: serves DIR over
HTTP, or HTTPS with --cert/--key, on 127.0.0.1:PORT only. How it answers
is read from MODE_FILE at each request, so that one server can play the
faults a real source has:

  normal        the files of DIR, 404 for a missing one
  stall         accepts the connection and never answers
  stall-image   answers the small files; an image: its headers and half of
                it, then nothing more
  close-image   as stall-image, but then closes the connection
  redirect-file every request is redirected to file://DIR/NAME
  redirect      every request is redirected to /real/NAME on this server
                (which serves NAME)
  error         every request gets 500
"""
import argparse
import http.server
import os
import ssl
import time


def handler(directory, mode_file):
    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a, **kw):
            super().__init__(*a, directory=directory, **kw)

        def log_message(self, fmt, *args):  # quiet: the test's output is rdext's
            pass

        def do_GET(self):
            with open(mode_file) as f:
                mode = f.read().strip()
            name = self.path.lstrip("/")
            image = name.endswith(".raw")
            if mode == "stall" or (mode in ("stall-image", "close-image") and image):
                if mode == "stall":
                    time.sleep(3600)
                    return
                data = open(os.path.join(directory, os.path.basename(name)), "rb").read()
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data[: len(data) // 2])
                self.wfile.flush()
                if mode == "stall-image":
                    time.sleep(3600)
                self.close_connection = True
                return
            if mode == "redirect-file":
                self.send_response(302)
                self.send_header("Location", "file://" + os.path.join(directory, os.path.basename(name)))
                self.end_headers()
                return
            if mode == "redirect" and not name.startswith("real/"):
                self.send_response(302)
                self.send_header("Location", "/real/" + name)
                self.end_headers()
                return
            if mode == "error":
                self.send_error(500)
                return
            if name.startswith("real/"):
                self.path = "/" + name[len("real/"):]
            super().do_GET()

    return Handler


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--dir", required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--mode-file", required=True)
    p.add_argument("--cert")
    p.add_argument("--key")
    a = p.parse_args()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", a.port), handler(a.dir, a.mode_file))
    server.daemon_threads = True
    if a.cert:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(a.cert, a.key)
        server.socket = ctx.wrap_socket(server.socket, server_side=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
