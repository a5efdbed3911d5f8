"""Keep-alive connections spread over granian's worker processes.

granian's workers each listen on a socket of their own (SO_REUSEPORT), and the kernel gives a
new connection to one of them by a hash of its addresses, whatever each worker already holds:
two clients land on one worker half of the time (the serve bench's `spread` column: 20 of 30
pairs here), and then, with one thread per worker, their lookups queue on one process while
the other idles. granian has no setting against it (its `backpressure` counts a worker's
connections, so 1 per worker would refuse the slowloris' second connection; a shared
listening socket is no better: the first worker woken wins). The former event-loop worker
waited before accept() in proportion to the connections it held, so that the idler worker won.

Here the worker that holds too many answers one request of a kept-alive connection with
`Connection: close`: the client reconnects (every HTTP/1.1 client does so on that header), and
the kernel's hash draws a worker again. Each worker counts its busy keep-alive connections
(clients that sent two requests or more within `WINDOW` seconds) and publishes the count with
a timestamp in an 8 + 8-byte file of its own, mapped in memory, in a directory shared by the
workers; a count older than `WINDOW` reads as 0 (an idle worker does not update it). A worker
closes one connection when it holds at least 2 more than the least busy live worker, at most
once per `COOLDOWN` seconds. A lone connection (a pipelining client, a test) is never closed,
and neither is one that has sent a single request.
"""

from __future__ import annotations

import contextlib
import mmap
import os
import struct
import time
from pathlib import Path

from featql.core.pool import pid_alive

WINDOW = 0.5  # seconds: a connection with no request for this long is not counted
COOLDOWN = 0.25  # seconds between two closes by one worker
TICK = 0.05  # seconds between two recounts (a request triggers it)
RELIST = 1.0  # seconds between two listings of the workers' files
SURPLUS = 2  # close when holding this many more than the least busy worker
_SLOT = struct.Struct("=dd")  # count, monotonic time of the count


class Balancer:
    """One per worker process; `close_after(client)` on every request."""

    def __init__(self, directory: Path, pid: int | None = None):
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.pid = pid or os.getpid()
        path = directory / str(self.pid)
        with open(path, "w+b") as f:
            f.write(bytes(_SLOT.size))
            f.flush()
            self.mine = mmap.mmap(f.fileno(), _SLOT.size)
        self.others: dict[int, mmap.mmap] = {}
        self.seen: dict[str, list[float]] = {}  # client address: [last request, requests]
        self.held = 0
        self.surplus = False
        self.next_tick = self.next_list = self.next_close = 0.0

    def close_after(self, client: str, now: float | None = None) -> bool:
        """Note a request from `client` ("host:port" of its connection) at `now` (monotonic
        seconds: the current time); True when its response should close the connection."""
        now = time.monotonic() if now is None else now
        entry = self.seen.get(client)
        if entry is None:
            self.seen[client] = [now, 1.0]
        else:
            entry[0] = now
            entry[1] += 1
        if now >= self.next_tick:
            self._tick(now)
        if entry is None or entry[1] < 2 or not self.surplus or now < self.next_close:
            return False
        del self.seen[client]
        self.next_close = now + COOLDOWN
        self.held -= 1
        _SLOT.pack_into(self.mine, 0, self.held, now)
        self.surplus = False  # until the next recount
        return True

    def _tick(self, now: float) -> None:
        self.next_tick = now + TICK
        old = now - WINDOW
        for client in [c for c, (last, _) in self.seen.items() if last < old]:
            del self.seen[client]
        self.held = sum(1 for _, n in self.seen.values() if n >= 2)
        _SLOT.pack_into(self.mine, 0, self.held, now)
        if now >= self.next_list:
            self._list(now)
        least = None
        for view in self.others.values():
            count, at = _SLOT.unpack_from(view, 0)
            count = count if at >= old else 0.0
            least = count if least is None else min(least, count)
        self.surplus = least is not None and self.held - least >= SURPLUS

    def _list(self, now: float) -> None:
        """Map the files of the live workers, drop those of workers gone."""
        self.next_list = now + RELIST
        live: set[int] = set()
        with contextlib.suppress(OSError):
            for name in os.listdir(self.directory):
                if not name.isdigit() or int(name) == self.pid:
                    continue
                pid = int(name)
                if not pid_alive(pid):
                    with contextlib.suppress(OSError):
                        os.unlink(self.directory / name)
                    continue
                live.add(pid)
                if pid not in self.others:
                    with contextlib.suppress(OSError, ValueError), \
                            open(self.directory / name, "rb") as f:
                        self.others[pid] = mmap.mmap(f.fileno(), _SLOT.size,
                                                     access=mmap.ACCESS_READ)
        for pid in set(self.others) - live:
            self.others.pop(pid).close()
