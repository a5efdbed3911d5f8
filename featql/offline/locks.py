"""Writer locks: one writer per (workspace, view) of an offline store at a time.

A write transaction (`OfflineStore.begin` … `commit`) holds its view's lock from before it
reads or stages anything until its commit is finished, so two writers never interleave: the
second waits (it calls `on_wait` once, then polls) and gives up with a `UserError` after
`timeout` seconds (`FEATQL_LOCK_TIMEOUT`, default 1800).

- Local folders: `fcntl.flock` on `<path>/<workspace>/<view>/.writer.lock`. The kernel drops
  the lock when its holder dies, however it dies. The file holds the holder's `Writer` record
  (for messages only; the flock is the truth).
- `s3://` with boto3: a lease object `<path>/<workspace>/<view>/_writer.lease` created by a
  conditional PUT (`If-None-Match: *`), so one writer wins whichever machine it runs on. The
  holder renews it every `LEASE_SECONDS / 3` (PUT with `If-Match` on its own ETag) and
  deletes it on release (`If-Match` again). A lease whose expiry has passed, or whose holder
  ran on this host and is gone, is taken over with `If-Match` on the stale ETag (one taker
  wins). Not protected: a holder paused for longer than `LEASE_SECONDS` (it checks its lease
  right before committing, which narrows but does not close that window), and clocks of two
  machines that disagree by more than the lease.
- `s3://` without boto3 (no conditional PUT through pyarrow): an flock on a file beside the
  project, `<project>/.featql/locks/<hash of the view folder>.lock`. It serialises the writers
  of this project on this machine only; it does NOT protect two machines (or two checkouts)
  writing the same bucket.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from featql.core.errors import UserError
from featql.core.pool import pid_alive

LEASE_SECONDS = 60.0
POLL_SECONDS = 0.1
LOCK_FILE = ".writer.lock"
LEASE_OBJECT = "_writer.lease"


def lock_timeout() -> float:
    raw = os.environ.get("FEATQL_LOCK_TIMEOUT", "1800")
    try:
        return float(raw)
    except ValueError as e:
        raise UserError(f"FEATQL_LOCK_TIMEOUT='{raw}' is not a number of seconds") from e


@dataclass(frozen=True)
class Writer:
    """Who writes: a process (pid + host + its start time) and one lock holding (owner)."""

    pid: int
    host: str
    started: float | None  # the process's start time (epoch seconds), None where unknown
    owner: str

    @staticmethod
    def me() -> Writer:
        return Writer(os.getpid(), socket.gethostname(), process_start(os.getpid()),
                      uuid.uuid4().hex[:16])

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @staticmethod
    def parse(text: str) -> Writer | None:
        try:
            d = json.loads(text)
            return Writer(int(d["pid"]), str(d["host"]), d.get("started"), str(d["owner"]))
        except (ValueError, KeyError, TypeError):
            return None

    def gone(self) -> bool:
        """True when this writer's process is known to be dead (only knowable on its host)."""
        if self.host != socket.gethostname():
            return False
        if not pid_alive(self.pid):
            return True
        now_started = process_start(self.pid)  # a reused pid is a different process
        return (self.started is not None and now_started is not None
                and abs(now_started - self.started) > 1.0)

    def describe(self) -> str:
        since = "" if self.started is None else time.strftime(
            " (running since %H:%M:%S)", time.localtime(self.started))
        return f"pid {self.pid} on {self.host}{since}"


def process_start(pid: int) -> float | None:
    """A process's start time in epoch seconds from /proc (None off Linux)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks = int(fields[19])  # field 22 of stat: starttime, in clock ticks after boot
        btime = next(int(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines()
                     if line.startswith("btime "))
        return round(btime + ticks / os.sysconf("SC_CLK_TCK"), 2)
    except (OSError, ValueError, IndexError, StopIteration):
        return None


OnWait = Callable[[Writer | None], None]


class WriterLock:
    """The writer lock of one view; `acquire()` waits, `try_acquire()` does not."""

    def __init__(self, what: str) -> None:
        self.what = what  # "view 'v' in workspace 'w'", for messages
        self.me = Writer.me()
        self.held = False

    def acquire(self, on_wait: OnWait | None = None, timeout: float | None = None
                ) -> WriterLock:
        timeout = lock_timeout() if timeout is None else timeout
        deadline = time.monotonic() + timeout
        told = False
        while not self.try_acquire():
            if not told and on_wait is not None:
                on_wait(self.holder())
            told = True
            if time.monotonic() >= deadline:
                holder = self.holder()
                by = f" (held by {holder.describe()})" if holder else ""
                raise UserError(f"timed out after {timeout:g}s waiting for another writer of "
                                f"{self.what}{by}; try again when it has finished, or set "
                                "FEATQL_LOCK_TIMEOUT to wait longer")
            time.sleep(POLL_SECONDS)
        return self

    def try_acquire(self) -> bool:
        raise NotImplementedError

    def release(self) -> None:
        raise NotImplementedError

    def holder(self) -> Writer | None:
        """The current holder as it recorded itself (None when unknown or free)."""
        raise NotImplementedError

    def check(self) -> None:
        """Raise unless this lock is still held (a lease can be lost)."""
        if not self.held:
            raise UserError(f"lost the writer lock of {self.what}; nothing was committed")

    def __enter__(self) -> WriterLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


class FileLock(WriterLock):
    """`fcntl.flock` on a lock file (see module doc)."""

    def __init__(self, path: str | Path, what: str) -> None:
        super().__init__(what)
        self.path = Path(path)
        self._fd: int | None = None

    def try_acquire(self) -> bool:
        import fcntl

        if self.held:
            return True
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        os.ftruncate(fd, 0)
        os.pwrite(fd, self.me.to_json().encode(), 0)
        self._fd, self.held = fd, True
        return True

    def release(self) -> None:
        import fcntl

        if self._fd is None:
            return
        fd, self._fd, self.held = self._fd, None, False
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)

    def holder(self) -> Writer | None:
        if self.held:
            return self.me
        try:
            return Writer.parse(self.path.read_text())
        except OSError:
            return None


class S3Lease(WriterLock):
    """A lease object on S3 taken with conditional PUTs (see module doc)."""

    def __init__(self, client: Any, bucket: str, key: str, what: str,
                 lease_seconds: float = LEASE_SECONDS) -> None:
        super().__init__(what)
        self.client, self.bucket, self.key = client, bucket, key
        self.lease_seconds = lease_seconds
        self._etag: str | None = None
        self._expires = 0.0
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None

    def _body(self) -> tuple[bytes, float]:
        expires = time.time() + self.lease_seconds
        doc = {**json.loads(self.me.to_json()), "expires": expires}
        return json.dumps(doc, sort_keys=True).encode(), expires

    def try_acquire(self) -> bool:
        if self.held:
            return True
        body, expires = self._body()
        try:
            res = self.client.put_object(Bucket=self.bucket, Key=self.key, Body=body,
                                         IfNoneMatch="*")
        except Exception as e:
            if not _conflict(e):
                raise
            return self._take_over_if_stale()
        self._won(res["ETag"], expires)
        return True

    def _take_over_if_stale(self) -> bool:
        current = self._read()
        if current is None:
            return False  # released meanwhile: the next poll creates it
        doc, etag = current
        writer = Writer.parse(json.dumps(doc))
        stale = float(doc.get("expires", 0)) < time.time() or (writer is not None
                                                                and writer.gone())
        if not stale:
            return False
        body, expires = self._body()
        try:
            res = self.client.put_object(Bucket=self.bucket, Key=self.key, Body=body,
                                         IfMatch=etag)
        except Exception as e:
            if _conflict(e) or _missing(e):
                return False  # another writer took it over first
            raise
        self._won(res["ETag"], expires)
        return True

    def _won(self, etag: str, expires: float) -> None:
        self._etag, self._expires, self.held = etag, expires, True
        self._stop.clear()
        self._renewer = threading.Thread(target=self._renew, daemon=True,
                                         name="featql-lease")
        self._renewer.start()

    def _renew(self) -> None:
        while not self._stop.wait(self.lease_seconds / 3):
            body, expires = self._body()
            try:
                res = self.client.put_object(Bucket=self.bucket, Key=self.key, Body=body,
                                             IfMatch=self._etag)
            except Exception as e:
                if _conflict(e) or _missing(e):  # taken over: this writer must not commit
                    self.held = False
                    return
                continue  # S3 unreachable for now: retry; `check` fails once it expired
            self._etag, self._expires = res["ETag"], expires

    def check(self) -> None:
        if self.held and time.time() > self._expires:
            self.held = False
        super().check()

    def release(self) -> None:
        self._stop.set()
        if self._renewer is not None:
            self._renewer.join(timeout=10)
            self._renewer = None
        if self._etag is not None:
            try:
                self.client.delete_object(Bucket=self.bucket, Key=self.key, IfMatch=self._etag)
            except Exception as e:
                if not (_conflict(e) or _missing(e)):  # no conditional delete: check, delete
                    with contextlib.suppress(Exception):
                        current = self._read()
                        if current is not None and current[0].get("owner") == self.me.owner:
                            self.client.delete_object(Bucket=self.bucket, Key=self.key)
                # else taken over already: nothing of ours is left to delete
        self._etag, self.held = None, False

    def holder(self) -> Writer | None:
        if self.held:
            return self.me
        current = self._read()
        return None if current is None else Writer.parse(json.dumps(current[0]))

    def _read(self) -> tuple[dict[str, Any], str] | None:
        try:
            res = self.client.get_object(Bucket=self.bucket, Key=self.key)
        except Exception as e:
            if _missing(e):
                return None
            raise
        try:
            doc = json.loads(res["Body"].read())
        except ValueError:
            doc = {}
        return doc, res["ETag"]


def _code(e: Exception) -> str:
    response = getattr(e, "response", None)
    return str(response.get("Error", {}).get("Code", "")) if isinstance(response, dict) else ""


def _conflict(e: Exception) -> bool:
    return _code(e) in ("PreconditionFailed", "412", "ConditionalRequestConflict", "409")


def _missing(e: Exception) -> bool:
    return _code(e) in ("NoSuchKey", "404", "NotFound")


def view_lock(store_path: str, project_root: str | None, workspace: str, view: str
              ) -> WriterLock:
    """The writer lock of a view of the store at `store_path` (a folder or s3://)."""
    from featql.engines.sources import is_s3, s3_key

    what = f"view '{view}' in workspace '{workspace}'"
    base = f"{store_path}/{workspace}/{view}"
    if not is_s3(store_path):
        return FileLock(f"{base}/{LOCK_FILE}", what)
    client = s3_client()
    if client is not None:
        bucket, _, key = s3_key(f"{base}/{LEASE_OBJECT}").partition("/")
        return S3Lease(client, bucket, key, what)
    digest = hashlib.sha256(base.encode()).hexdigest()[:16]
    root = Path(project_root) if project_root is not None else Path.home()
    return FileLock(root / ".featql" / "locks" / f"{digest}.lock", what)


def s3_client() -> Any:
    """A boto3 S3 client honouring AWS_ENDPOINT_URL(_S3); None without boto3."""
    try:
        import boto3
    except ImportError:
        return None
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    if endpoint and "://" not in endpoint:
        endpoint = f"http://{endpoint}"
    return boto3.client("s3", endpoint_url=endpoint or None,
                        region_name=os.environ.get("AWS_DEFAULT_REGION", "us-east-1"))
