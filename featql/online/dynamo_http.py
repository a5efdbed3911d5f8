"""A lean BatchGetItem for the serving hot path: SigV4-signed JSON over keep-alive HTTP.

The botocore client spends about a millisecond of CPU per call validating, serialising and
parsing; on the read path of the feature server that is most of the request. This sends the
same DynamoDB JSON protocol request with botocore's own credentials and SigV4 signer, over one
persistent connection per thread, and parses the answer with orjson. The HTTP/1.1 exchange is
done here too (`_Wire`: the request in one write, the response framed by Content-Length or
chunked encoding): http.client's header parsing and buffered reader cost ~0.15 ms of CPU per
call, more than signing and parsing together. Writes, table management and retries of errors
other than throttling stay on boto3.
"""

from __future__ import annotations

import hashlib
import hmac
import socket
import ssl
import threading
import time
from typing import Any
from urllib.parse import urlsplit

import orjson

from featql.core.errors import UserError

_RETRYABLE = ("ProvisionedThroughputExceededException", "ThrottlingException",
              "RequestLimitExceeded", "InternalServerError", "ServiceUnavailable")


class _Wire:
    """One kept-alive HTTP/1.1 connection: a request sent in one write, then one response read
    as (status, body, keep-alive), framed by Content-Length or chunked transfer encoding."""

    def __init__(self, host: str, port: int, https: bool, timeout: float):
        sock = socket.create_connection((host, port), timeout=timeout)
        # without NODELAY, Nagle's algorithm may hold a request behind an unacknowledged one
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if https:
            sock = ssl.create_default_context().wrap_socket(sock, server_hostname=host)
        self.sock = sock
        self._buf = bytearray()

    def close(self) -> None:
        self.sock.close()

    def _more(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionResetError("the server closed the connection")
        self._buf += chunk

    def _line(self) -> bytes:
        buf = self._buf
        while (end := buf.find(b"\r\n")) < 0:
            self._more()
        line = bytes(buf[:end])
        del buf[:end + 2]
        return line

    def response(self) -> tuple[int, bytes, bool]:
        buf = self._buf
        while (end := buf.find(b"\r\n\r\n")) < 0:
            self._more()
        lines = bytes(buf[:end]).decode("latin-1").split("\r\n")
        del buf[:end + 4]
        version, status = lines[0].split(" ", 2)[:2]
        if not version.startswith("HTTP/"):
            raise ValueError(f"not an HTTP response: {lines[0][:80]!r}")
        fields = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            fields[name.strip().lower()] = value.strip()
        keep = fields.get("connection", "").lower() != "close"
        if "chunked" in fields.get("transfer-encoding", "").lower():
            parts = []
            while size := int(self._line().split(b";", 1)[0], 16):
                while len(buf) < size + 2:
                    self._more()
                parts.append(bytes(buf[:size]))
                del buf[:size + 2]
            while self._line():  # trailer fields, up to the empty line
                pass
            body = b"".join(parts)
        elif "content-length" in fields:
            size = int(fields["content-length"])
            while len(buf) < size:
                self._more()
            body = bytes(buf[:size])
            del buf[:size]
        else:  # the body runs until the server closes the connection
            try:
                while True:
                    self._more()
            except ConnectionResetError:
                pass
            body, keep = bytes(buf), False
            del buf[:]
        return int(status), body, keep


class DynamoHttpError(UserError):
    def __init__(self, kind: str, message: str, retryable: bool):
        super().__init__(f"{kind}: {message}")
        self.kind, self.retryable = kind, retryable


class BatchGetClient:
    def __init__(self, client: Any, timeout: float = 5.0):
        self.url = client.meta.endpoint_url
        parts = urlsplit(self.url)
        self.https = parts.scheme == "https"
        self.host = parts.hostname or "localhost"
        self.port = parts.port or (443 if self.https else 80)
        self.path = parts.path or "/"
        self.region = client.meta.region_name
        self.timeout = timeout
        self._credentials = client._request_signer._credentials
        default = parts.port is None
        self.host_header = self.host if default else f"{self.host}:{self.port}"
        self._keys: dict[tuple[str, str], bytes] = {}
        self._local = threading.local()

    def _connect(self) -> _Wire:
        return _Wire(self.host, self.port, self.https, self.timeout)

    def _headers(self, body: bytes, amz_date: str | None = None) -> dict[str, str]:
        """AWS Signature Version 4 for one POST (the signing key is cached per day)."""
        creds = self._credentials.get_frozen_credentials()
        amz_date = amz_date or time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        day = amz_date[:8]
        headers = {"content-type": "application/x-amz-json-1.0", "host": self.host_header,
                   "x-amz-date": amz_date, "x-amz-target": "DynamoDB_20120810.BatchGetItem"}
        if creds.token:
            headers["x-amz-security-token"] = creds.token
        names = sorted(headers)
        signed = ";".join(names)
        canonical = "\n".join(["POST", self.path, "", *(f"{n}:{headers[n]}" for n in names), "",
                               signed, hashlib.sha256(body).hexdigest()])
        scope = f"{day}/{self.region}/dynamodb/aws4_request"
        to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope,
                             hashlib.sha256(canonical.encode()).hexdigest()])
        key = self._keys.get((creds.secret_key, day))
        if key is None:
            key = ("AWS4" + creds.secret_key).encode()
            for part in (day, self.region, "dynamodb", "aws4_request"):
                key = hmac.new(key, part.encode(), hashlib.sha256).digest()
            self._keys = {(creds.secret_key, day): key}
        signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
        headers["authorization"] = (f"AWS4-HMAC-SHA256 Credential={creds.access_key}/{scope}, "
                                    f"SignedHeaders={signed}, Signature={signature}")
        del headers["host"]
        return headers

    def _send(self, slot: int, body: bytes, headers: dict[str, str]) -> _Wire:
        conns: list[_Wire | None] = self._local.__dict__.setdefault("conns", [])
        while len(conns) <= slot:
            conns.append(None)
        data = "".join([f"POST {self.path} HTTP/1.1\r\nHost: {self.host_header}\r\n"
                        f"Accept-Encoding: identity\r\nContent-Length: {len(body)}\r\n",
                        *(f"{k}: {v}\r\n" for k, v in headers.items()), "\r\n"]
                       ).encode("latin-1") + body
        for attempt in (0, 1):  # one reconnect when a kept-alive connection was closed
            conn = conns[slot] or self._connect()
            conns[slot] = conn
            try:
                conn.sock.sendall(data)
                return conn
            except OSError:
                conn.close()
                conns[slot] = None
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def _receive(self, slot: int, conn: _Wire, body: bytes,
                 headers: dict[str, str]) -> dict[str, Any]:
        try:
            status, data, keep = conn.response()
        except (OSError, ValueError):
            # a kept-alive connection closed under us: reads are idempotent, send again once
            conn.close()
            self._local.conns[slot] = None
            conn = self._send(slot, body, headers)
            status, data, keep = conn.response()
        if not keep:
            conn.close()
            self._local.conns[slot] = None
        out: dict[str, Any] = orjson.loads(data) if data else {}
        if status != 200:
            kind = str(out.get("__type", f"HTTP {status}")).rsplit("#", 1)[-1]
            raise DynamoHttpError(kind, str(out.get("message", out.get("Message", ""))),
                                  kind in _RETRYABLE or status >= 500)
        return out

    def batch_get_all(self, requests: list[dict[str, Any]]) -> list[dict[str, Any] | Exception]:
        """Several BatchGetItem calls in flight at once from the calling thread, one kept-alive
        connection each: all are sent, then all answers read (one round trip of latency, no
        thread hand-offs). Answers keep DynamoDB's JSON shape: binary values stay base64
        strings. A call that failed is returned as its exception."""
        sent: list[tuple[bytes, dict[str, str], _Wire | Exception]] = []
        for slot, items in enumerate(requests):
            body = orjson.dumps({"RequestItems": items})
            headers = self._headers(body)
            try:
                sent.append((body, headers, self._send(slot, body, headers)))
            except Exception as e:  # handed back to the caller's retry loop
                sent.append((body, headers, e))
        out: list[dict[str, Any] | Exception] = []
        for slot, (body, headers, conn) in enumerate(sent):
            if isinstance(conn, Exception):
                out.append(conn)
                continue
            try:
                out.append(self._receive(slot, conn, body, headers))
            except Exception as e:
                out.append(e)
        return out
