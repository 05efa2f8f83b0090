"""paced.py SIZE CHUNK PAUSE [BODY]: a stand-in relay that answers every
request with 200 and a JSON body (BODY, else an array of SIZE bytes),
written CHUNK bytes at a time, PAUSE seconds apart: a relay, or whatever
is at its URL, trickling its answer. Prints its port, then serves."""
import sys
import time

import fakehttp

size, chunk, pause = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
body = sys.argv[4].encode() if len(sys.argv) > 4 else \
    b"[" + b" " * (size - 2) + b"]"
answer = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
          b"Content-Length: %d\r\n\r\n" % len(body)) + body


def serve(c):
    try:
        c.recv(65536)
        for i in range(0, len(answer), chunk):
            c.sendall(answer[i:i + chunk])
            time.sleep(pause)
    except OSError:
        pass
    c.close()


fakehttp.serve_raw(serve)
