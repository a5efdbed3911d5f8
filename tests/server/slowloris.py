"""A bounded slowloris, run as its own process by test_hostile.py (so that its sends do not
share a GIL with the latency measurements).

    python slowloris.py PORT CONNECTIONS SECONDS

Opens CONNECTIONS sockets to 127.0.0.1:PORT and, for SECONDS, sends each one byte of a request
head that never ends about once a second (the sends spread evenly over each second). A socket
the server closes is counted and replaced, so CONNECTIONS stay open. Prints `ready` once all
are open, then one JSON line of counts at the end, and exits by itself.
"""

from __future__ import annotations

import json
import resource
import socket
import sys
import time

PREFIX = (b"POST /v1/features/merchant_risk HTTP/1.1\r\nHost: 127.0.0.1\r\n"
          b"Content-Type: application/json\r\nX-Slow: ")


class Trickle:
    def __init__(self, port: int):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.sock.setblocking(False)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sent = 0

    def step(self) -> bool:
        """Send the next byte; False when the server has closed or answered."""
        try:
            self.sock.recv(4096, socket.MSG_PEEK)
            return False  # an answer (408/400) or EOF: the server let go
        except BlockingIOError:
            pass  # nothing to read: still waiting for us
        except OSError:
            return False
        byte = PREFIX[self.sent:self.sent + 1] or b"a"
        try:
            self.sock.send(byte)
        except BlockingIOError:
            return True
        except OSError:
            return False
        self.sent += 1
        return True


def main() -> None:
    port, n, seconds = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = n + 256
    if hard != resource.RLIM_INFINITY:
        want = min(want, hard)
    resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    t0 = time.monotonic()
    stop = t0 + seconds
    conns: list[Trickle] = []
    connect_failures = 0
    while len(conns) < n and time.monotonic() < stop:
        try:
            conns.append(Trickle(port))
        except OSError:
            connect_failures += 1
    print("ready", flush=True)
    closed = reopened = sent = 0
    while time.monotonic() < stop:
        round_start = time.monotonic()
        if not conns:
            time.sleep(0.1)
        for i in range(len(conns)):
            if conns[i].step():
                sent += 1
            else:
                closed += 1
                conns[i].sock.close()
                try:
                    conns[i] = Trickle(port)
                    reopened += 1
                except OSError:
                    connect_failures += 1
            due = round_start + (i + 1) / len(conns)  # spread the sends over the second
            pause = due - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            if time.monotonic() >= stop:
                break
    for c in conns:
        c.sock.close()
    print(json.dumps({"connections": n, "opened": len(conns) + reopened, "closed_by_server":
                      closed, "reopened": reopened, "connect_failures": connect_failures,
                      "bytes_sent": sent, "seconds": round(time.monotonic() - t0, 2)}),
          flush=True)


if __name__ == "__main__":
    main()
