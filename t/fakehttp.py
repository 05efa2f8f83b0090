"""fakehttp: what the suite's stand-in relays share. t/helper.bash puts
t/ on PYTHONPATH, so a test's script can say:

    import fakehttp
    class H(fakehttp.Handler):
        def do_GET(self):
            self.answer(200, b"[]")
    fakehttp.serve(H)    # prints the port it listens on, then serves
"""
import http.server
import json
import socket
import threading
import time


class Handler(http.server.BaseHTTPRequestHandler):
    def answer(self, status, body, ctype="application/json", headers=()):
        self.send_response(status)
        if ctype:
            self.send_header("Content-Type", ctype)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a):
        pass


class SendOnly(Handler):
    """A relay that stores sends and has no other route (no receipts):
    python3 -c 'import fakehttp; fakehttp.serve(fakehttp.SendOnly)'"""
    protocol_version = "HTTP/1.1"

    def reply(self, code, obj):
        self.answer(code, json.dumps(obj).encode())

    def do_POST(self):
        n = int(self.headers.get("Content-Length", 0))
        req = json.loads(self.rfile.read(n))
        self.reply(200, {"id": req["id"], "from": "alice", "to": req["to"],
                         "body": req["body"], "priority": "normal",
                         "ts": "2026-01-01T00:00:00.000Z"})

    def do_GET(self):
        self.reply(404, {"error": "no such route"})


class LogsAuth(Handler):
    """A relay that takes no token: each request's Authorization is
    appended to auth.log, and the answer is 401."""

    def do_POST(self):
        with open("auth.log", "a") as f:
            f.write(self.headers.get("Authorization", "") + "\n")
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.answer(401, b'{"error":"invalid token"}')


def serve(handler, host="127.0.0.1", threads=False, cert=None):
    """cert: (certificate file, key file) to serve over TLS."""
    base = http.server.ThreadingHTTPServer if threads else http.server.HTTPServer

    class Server(base):
        address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        daemon_threads = True

    s = Server((host, 0), handler)
    if cert:
        import ssl
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(*cert)
        s.socket = ctx.wrap_socket(s.socket, server_side=True)
    print(s.server_address[1], flush=True)
    s.serve_forever()


def serve_raw(serve, nodelay=False):
    """A stand-in below HTTP: prints the port it listens on, then calls
    serve(connection) in a thread of its own for each connection."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(16)
    print(s.getsockname()[1], flush=True)
    while True:
        c, _ = s.accept()
        if nodelay:
            c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        threading.Thread(target=serve, args=(c,), daemon=True).start()


def read_head(c):
    """The head of the request on raw connection c, as its lines, or
    None if the client closed first."""
    req = b""
    while b"\r\n\r\n" not in req:
        d = c.recv(65536)
        if not d:
            return None
        req += d
    return req.split(b"\r\n\r\n")[0].decode("latin-1").split("\r\n")


def answer_json(c, body):
    """A 200 with the JSON bytes body on raw connection c, then close."""
    c.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json"
              b"\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s"
              % (len(body), body))


def read_all(s):
    """All that raw connection s sends until it closes."""
    got = b""
    while True:
        b = s.recv(65536)
        if not b:
            return got
        got += b


def ask_cut(port, data, cut, pause=0.002):
    """data to 127.0.0.1:port on a new connection, in two writes split at
    cut and pause seconds apart (so the server reads them apart); all it
    answers, until it closes."""
    s = socket.socket()
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    s.connect(("127.0.0.1", port))
    s.sendall(data[:cut])
    time.sleep(pause)
    s.sendall(data[cut:])
    got = read_all(s)
    s.close()
    return got
