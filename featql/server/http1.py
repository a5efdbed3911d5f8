"""HTTP/1.1 request parsing and response framing for the feature server's event-loop worker
(`featql.server.worker`). Pure functions over bytes: no sockets here, so every rule below is
unit-tested directly.

What is accepted: HTTP/1.0 and 1.1 requests in origin form (`/path?query`, or `*`), a body
framed by Content-Length or by chunked transfer coding, `Expect: 100-continue`, pipelining.
What is refused, with a status and a reason rather than a guess: a request line or head over
the limits (414 / 431), a header name that is not a token, a control character in a value,
obsolete line folding, a Content-Length that is not digits or disagrees with itself, both
Content-Length and Transfer-Encoding (the request-smuggling shape), a transfer coding other
than chunked (501), a body over the limit (413), another HTTP version (505). Header names with
an underscore are dropped, as gunicorn does by default: `X_Forwarded_For` must not arrive as
the same WSGI key as `X-Forwarded-For`.
"""

from __future__ import annotations

import io
import re
import sys
from dataclasses import dataclass, field
from email.utils import formatdate
from typing import Any
from urllib.parse import unquote_to_bytes

import orjson

TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+\Z")
CONTROL = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")
HEX = re.compile(rb"[0-9A-Fa-f]{1,16}\Z")
REASONS = {100: "Continue", 200: "OK", 201: "Created", 204: "No Content", 301:
           "Moved Permanently", 302: "Found", 304: "Not Modified", 307: "Temporary Redirect",
           308: "Permanent Redirect", 400: "Bad Request", 401: "Unauthorized", 403:
           "Forbidden", 404: "Not Found", 405: "Method Not Allowed", 408: "Request Timeout",
           411: "Length Required", 413: "Content Too Large", 414: "URI Too Long", 415:
           "Unsupported Media Type", 417: "Expectation Failed", 422: "Unprocessable Content",
           429: "Too Many Requests", 431: "Request Header Fields Too Large", 500:
           "Internal Server Error", 501: "Not Implemented", 503: "Service Unavailable", 505:
           "HTTP Version Not Supported"}


class HTTPError(ValueError):
    """A request the server refuses before the app sees it; the connection is closed after
    the error response, since the framing of what follows cannot be trusted."""

    def __init__(self, status: int, message: str, field: str = "headers"):
        super().__init__(message)
        self.status, self.message, self.field = status, message, field


@dataclass(frozen=True)
class Limits:
    request_line: int = 4094  # gunicorn's defaults
    header_fields: int = 100
    header_field_size: int = 8190
    body: int = 1 << 20

    @property
    def head(self) -> int:
        """Bytes a head may take in all, request line and blank line included."""
        return self.request_line + self.header_fields * (self.header_field_size + 2) + 4


@dataclass(frozen=True, slots=True)
class Head:
    method: str
    path: bytes  # raw, still percent-encoded
    query: bytes
    version: str  # "HTTP/1.0" | "HTTP/1.1"
    headers: tuple[tuple[str, str], ...]  # (lower-case name, value), in arrival order
    length: int | None  # Content-Length; None when chunked or absent
    chunked: bool
    keep_alive: bool
    expect_continue: bool
    size: int  # bytes of the head, blank line included


def find_head_end(buf: bytes | bytearray, limits: Limits) -> int:
    """Offset just past the blank line ending the head at buf's start, or -1 when it has not
    all arrived. Raises HTTPError when what has arrived is already over a limit."""
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        line = buf.find(b"\r\n")
        if (line < 0 and len(buf) > limits.request_line) or line > limits.request_line:
            raise HTTPError(414, f"request line longer than {limits.request_line} bytes", "path")
        if len(buf) > limits.head:
            raise HTTPError(431, f"request head longer than {limits.head} bytes")
        return -1
    if end + 4 > limits.head:
        raise HTTPError(431, f"request head longer than {limits.head} bytes")
    return end + 4


def parse_head(raw: bytes, limits: Limits) -> Head:
    """The head (request line, header lines, the blank line) of one request."""
    lines = raw[:-4].split(b"\r\n")
    request_line = lines[0]
    if len(request_line) > limits.request_line:
        raise HTTPError(414, f"request line longer than {limits.request_line} bytes", "path")
    parts = request_line.split(b" ")
    if len(parts) != 3 or not TOKEN.match(parts[0]):
        raise HTTPError(400, "malformed request line", "request_line")
    method, target, version = parts
    if version not in (b"HTTP/1.1", b"HTTP/1.0"):
        if version.startswith(b"HTTP/"):
            raise HTTPError(505, f"{version.decode('latin-1')} is not supported; use HTTP/1.1",
                            "request_line")
        raise HTTPError(400, "malformed request line", "request_line")
    if (CONTROL.search(target) or b"\t" in target
            or not (target.startswith(b"/") or target == b"*")):
        raise HTTPError(400, "request target must be a path starting with /", "path")
    if len(lines) - 1 > limits.header_fields:
        raise HTTPError(431, f"more than {limits.header_fields} header fields")
    headers: list[tuple[str, str]] = []
    lengths: set[bytes] = set()
    codings: list[bytes] = []
    te = False  # a Transfer-Encoding field arrived, even one listing no coding
    connection = b""
    expect = b""
    for line in lines[1:]:
        if len(line) > limits.header_field_size:
            raise HTTPError(431, f"a header field is longer than {limits.header_field_size} "
                            "bytes")
        if line[:1] in (b" ", b"\t"):
            raise HTTPError(400, "obsolete header line folding is not accepted")
        name, sep, value = line.partition(b":")
        if not sep or not TOKEN.match(name):
            raise HTTPError(400, "malformed header line")
        value = value.strip(b" \t")
        if CONTROL.search(value):
            raise HTTPError(400, "control character in a header value")
        lname = name.lower()
        if lname == b"content-length":
            lengths.update(v.strip(b" \t") for v in value.split(b","))
        elif lname == b"transfer-encoding":
            te = True
            codings.extend(c.strip(b" \t").lower() for c in value.split(b",") if c.strip())
        elif lname == b"connection":
            connection += b"," + value.lower()
        elif lname == b"expect":
            expect = value.lower()
        headers.append((lname.decode("latin-1"), value.decode("latin-1")))
    length: int | None = None
    if lengths:
        if len(lengths) > 1 or not next(iter(lengths)).isdigit():
            raise HTTPError(400, "invalid Content-Length")
        length = int(next(iter(lengths)))
    chunked = False
    if te:
        if length is not None:
            raise HTTPError(400, "both Content-Length and Transfer-Encoding")
        if codings != [b"chunked"]:
            raise HTTPError(501, "only the chunked transfer coding is supported")
        if version == b"HTTP/1.0":
            raise HTTPError(400, "Transfer-Encoding in an HTTP/1.0 request")
        chunked = True
    if length is not None and length > limits.body:
        raise HTTPError(413, f"request body of {length} bytes exceeds the limit of "
                        f"{limits.body}", "body")
    tokens = {t.strip() for t in connection.split(b",")}
    keep_alive = (b"keep-alive" in tokens if version == b"HTTP/1.0"
                  else b"close" not in tokens)
    if expect and expect != b"100-continue":
        raise HTTPError(417, "only 'Expect: 100-continue' is supported")
    path, _, query = target.partition(b"?")
    return Head(method.decode("ascii"), path, query, version.decode("ascii"), tuple(headers),
                length, chunked, keep_alive,
                expect == b"100-continue" and version == b"HTTP/1.1", len(raw))


@dataclass(slots=True)
class Chunked:
    """Progress through a chunked body whose end has not arrived: the next read resumes here
    instead of parsing every chunk again (which a body of tiny chunks would make quadratic)."""

    pos: int  # offset in the buffer of the next chunk-size line (or trailer line)
    out: bytearray = field(default_factory=bytearray)
    excess: int = 0  # framing beyond 16 bytes a chunk plus twice its data (Go's allowance)
    trailer: int = -1  # offset where the trailer section starts, once the last chunk is read


def read_chunked(buf: bytes | bytearray, start: int, limit: int,
                 state: Chunked | None = None) -> tuple[bytes, int] | None:
    """A chunked body starting at buf[start]: (the body, the offset after it, trailers
    included), or None when it has not all arrived. Pass the same `state` again with the
    grown buffer to resume."""
    st = state if state is not None else Chunked(start)
    while st.trailer < 0:
        pos = st.pos
        eol = buf.find(b"\r\n", pos)
        if eol < 0:
            if len(buf) - pos > 1024:
                raise HTTPError(400, "invalid chunk size line", "body")
            return None
        size_field = bytes(buf[pos:eol]).split(b";", 1)[0].strip(b" \t")
        if not HEX.match(size_field):
            raise HTTPError(400, "invalid chunk size", "body")
        size = int(size_field, 16)
        excess = max(0, st.excess + eol + 2 - pos - 16 - 2 * size)
        if excess > 16384:
            raise HTTPError(400, "too much chunk framing (extensions) for the data", "body")
        data = eol + 2
        if size == 0:
            st.excess, st.pos, st.trailer = excess, data, data
            break
        if len(st.out) + size > limit:
            raise HTTPError(413, f"request body exceeds the limit of {limit} bytes", "body")
        if len(buf) < data + size + 2:
            return None  # the size line is read again next time
        if buf[data + size:data + size + 2] != b"\r\n":
            raise HTTPError(400, "chunk not terminated by CRLF", "body")
        st.out += buf[data:data + size]
        st.excess, st.pos = excess, data + size + 2
    while True:  # trailer fields, ignored, up to the blank line
        eol = buf.find(b"\r\n", st.pos)
        if (len(buf) if eol < 0 else eol) - st.trailer > 8192:
            raise HTTPError(431, "chunked trailer too long")
        if eol < 0:
            return None
        if eol == st.pos:
            return bytes(st.out), eol + 2
        st.pos = eol + 2


def environ(head: Head, body: bytes, server: tuple[str, str], client: tuple[str, str],
            ) -> dict[str, Any]:
    """The WSGI environ (PEP 3333) of a parsed request."""
    env: dict[str, Any] = {
        "REQUEST_METHOD": head.method,
        "SCRIPT_NAME": "",
        "PATH_INFO": unquote_to_bytes(head.path).decode("latin-1"),
        "QUERY_STRING": head.query.decode("latin-1"),
        "RAW_URI": (head.path + (b"?" + head.query if head.query else b"")).decode("latin-1"),
        "SERVER_NAME": server[0],
        "SERVER_PORT": server[1],
        "SERVER_PROTOCOL": head.version,
        "REMOTE_ADDR": client[0],
        "REMOTE_PORT": client[1],
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": False,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
    }
    if head.length is not None or head.chunked:
        env["CONTENT_LENGTH"] = str(len(body))
    for name, value in head.headers:
        if "_" in name:
            continue
        if name == "content-type":
            env["CONTENT_TYPE"] = value
            continue
        if name in ("content-length", "transfer-encoding"):
            continue
        key = "HTTP_" + name.upper().replace("-", "_")
        env[key] = f"{env[key]},{value}" if key in env else value
    return env


_date: list[Any] = [0, b""]


def http_date(now: float) -> bytes:
    """The Date header value, formatted once per second."""
    second = int(now)
    if _date[0] != second:
        _date[0], _date[1] = second, formatdate(second, usegmt=True).encode("ascii")
    return bytes(_date[1])


def response(status: str, headers: list[tuple[str, str]], body: bytes, *, keep_alive: bool,
             head_only: bool, now: float) -> bytes:
    """An HTTP/1.1 response: the app's status and headers, Content-Length set from the body
    (it is always fully buffered), Connection and Date added."""
    out = [b"HTTP/1.1 ", status.encode("latin-1"), b"\r\n"]
    for name, value in headers:
        lname = name.lower()
        if lname in ("content-length", "connection", "transfer-encoding", "date"):
            continue
        if CONTROL.search(value.encode("latin-1")) or not TOKEN.match(name.encode("latin-1")):
            raise ValueError(f"invalid response header {name!r}")
        out += (name.encode("latin-1"), b": ", value.encode("latin-1"), b"\r\n")
    code = int(status[:3])
    if code >= 200 and code not in (204, 304):
        out += (b"Content-Length: ", str(len(body)).encode("ascii"), b"\r\n")
    out += (b"Connection: ", b"keep-alive" if keep_alive else b"close", b"\r\nDate: ",
            http_date(now), b"\r\n\r\n")
    if not head_only and code not in (204, 304):
        out.append(body)
    return b"".join(out)


def status_line(status: int) -> str:
    """`"413 Content Too Large"`: the code and its reason phrase (`Error` when unknown)."""
    return f"{status} {REASONS.get(status, 'Error')}"


def error_response(status: int, message: str, field: str, now: float) -> bytes:
    """The server's own refusal, in featql's JSON error shape; the connection closes after."""
    code = {413: "body_too_large", 500: "internal"}.get(status, "bad_http")
    body = orjson.dumps({"error": {"code": code, "message": message, "field": field}})
    return response(status_line(status),
                    [("Content-Type", "application/json")], body, keep_alive=False,
                    head_only=False, now=now)
