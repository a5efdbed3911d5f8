"""A lean BatchGetItem for the serving hot path: botocore-signed JSON over keep-alive HTTP.

The botocore client spends most of a read's CPU validating, serialising, running its event
hooks and parsing. CPU per BatchGetItem against dynalite on 127.0.0.1, medians of 9
interleaved rounds in one run (bench/dynamo_read_cpu.py; two runs), 1 key / 100 keys: this
reader 0.27-0.35 / 0.48-0.56 ms, plain boto3 `batch_get_item` 1.3-1.8 / 3.9-4.8 ms (the reader
before it signed with SigV4Auth, with its own SigV4 code: 0.14 / 0.28-0.34 ms; SigV4Auth's
header handling is the difference). This sends the same DynamoDB JSON
request, signed by botocore's public
`SigV4Auth` over an `AWSRequest` with credentials from the botocore session (refreshable ones
frozen per request), over one persistent connection per thread, and parses the answer with
orjson. The HTTP/1.1 exchange is done here (`_Wire`: the request in one write, the response
framed by Content-Length or chunked encoding): http.client's header parsing and buffered
reader cost more CPU per call than signing and parsing together.

What the wire must agree on with botocore, so that a request signs and verifies the same:
  * the Host header comes from SigV4Auth itself (`headers_to_sign`): the port is dropped when
    it is the scheme's default (`https://h:443`), an IPv6 literal keeps its brackets;
  * the request target is the endpoint's path as botocore sends it (invalid characters
    percent-encoded, nothing else touched); the signature is computed over the same URL
    botocore signs (the endpoint URL, '/' when it has no path);
  * TLS verifies against the CA bundle botocore would use (`verify=` of the client, the
    session's `ca_bundle` (AWS_CA_BUNDLE or the config file), REQUESTS_CA_BUNDLE, or botocore's
    default bundle), or not at all when verify is False.
Proxies are not spoken here: the store reads through boto3 whenever one applies to the
endpoint (see `featql.online.dynamodb.lean_read_settings`). Writes, table management and
proxied reads stay on boto3; retries and the read deadline are the store's.
"""

from __future__ import annotations

import os
import re
import socket
import ssl
import threading
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import orjson

from featql.online.base import OnlineStoreError

_RETRYABLE = ("ProvisionedThroughputExceededException", "ThrottlingException",
              "RequestLimitExceeded", "InternalServerError", "ServiceUnavailable")
TARGET = "DynamoDB_20120810.BatchGetItem"
CONTENT_TYPE = "application/x-amz-json-1.0"
# what may stand unencoded in a request target's path (RFC 3986 pchar, '/' and '%')
_PATH_SAFE = "/!$&'()*+,;=:@~%"
_QUERY_SAFE = _PATH_SAFE + "?"
_PERCENT = re.compile(r"%[0-9a-fA-F]{2}")


class DynamoHttpError(OnlineStoreError):
    """An error answer of DynamoDB (or a connection that could not be made)."""

    def __init__(self, kind: str, message: str, retryable: bool):
        super().__init__(f"{kind}: {message}")
        self.kind, self.retryable = kind, retryable


class CredentialsError(OnlineStoreError):
    """The AWS credentials could not be resolved or refreshed."""


def request_target(url: str) -> str:
    """The request target botocore (through urllib3) sends for `url`: the path ('/' when
    empty) and query with characters that may not appear there percent-encoded, existing
    percent-escapes kept (upper-cased); dot segments are left alone."""
    parts = urlsplit(url)

    def enc(text: str, safe: str) -> str:
        text = _PERCENT.sub(lambda m: m.group(0).upper(), text)
        return quote(text, safe=safe)

    path = enc(parts.path or "/", _PATH_SAFE)
    return path + ("?" + enc(parts.query, _QUERY_SAFE) if parts.query else "")


def signing_url(endpoint_url: str) -> str:
    """The URL botocore signs for a JSON-protocol call to `endpoint_url` (its path, or '/')."""
    p = urlsplit(endpoint_url)
    return urlunsplit((p.scheme, p.netloc, p.path or "/", p.query, p.fragment))


def tls_context(verify: bool | str) -> ssl.SSLContext:
    """A client TLS context verifying like botocore: `verify` True (botocore's default CA
    bundle), a CA bundle file or directory, or False (no verification)."""
    if verify is False:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        return ctx
    from botocore.httpsession import get_cert_path

    path = get_cert_path(verify)
    try:
        if os.path.isdir(path):
            return ssl.create_default_context(capath=path)
        return ssl.create_default_context(cafile=path)
    except (OSError, ssl.SSLError) as e:
        raise OnlineStoreError(f"DynamoDB: cannot load the CA bundle {path}: {e}") from e


class _Wire:
    """One kept-alive HTTP/1.1 connection: a request sent in one write, then one response read
    as (status, body, keep-alive), framed by Content-Length or chunked transfer encoding."""

    def __init__(self, host: str, port: int, tls: ssl.SSLContext | None, timeout: float):
        sock = socket.create_connection((host, port), timeout=timeout)
        # without NODELAY, Nagle's algorithm may hold a request behind an unacknowledged one
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if tls is not None:
            try:
                sock = tls.wrap_socket(sock, server_hostname=host)
            except BaseException:
                sock.close()
                raise
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


class BatchGetClient:
    """BatchGetItem calls to one endpoint. `credentials`: a botocore credentials object (plain
    or refreshable), frozen for each request; `verify` as botocore's (see `tls_context`)."""

    def __init__(self, endpoint_url: str, region: str, credentials: Any, *,
                 verify: bool | str = True, timeout: float = 5.0):
        from botocore import __version__ as botocore_version
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest

        if credentials is None:
            raise CredentialsError("DynamoDB: no AWS credentials found (environment, "
                                   "~/.aws/credentials, instance or container role)")
        self._auth_cls, self._request_cls = SigV4Auth, AWSRequest
        self.url = endpoint_url
        parts = urlsplit(endpoint_url)
        self.https = parts.scheme == "https"
        self.host = parts.hostname or "localhost"
        self.port = parts.port or (443 if self.https else 80)
        self.sign_url = signing_url(endpoint_url)
        self.target = request_target(self.sign_url)
        self.region = region
        self.timeout = timeout
        self._credentials = credentials
        # the Host header exactly as SigV4Auth signs it (no default port, IPv6 in brackets)
        probe = AWSRequest(method="POST", url=self.sign_url)
        self.host_header = SigV4Auth(None, "dynamodb", region).headers_to_sign(probe)["host"]
        self._tls = tls_context(verify) if self.https else None
        self._user_agent = f"featql-batch-get Botocore/{botocore_version}"
        self._local = threading.local()

    def _connect(self) -> _Wire:
        try:
            return _Wire(self.host, self.port, self._tls, self.timeout)
        except ssl.SSLCertVerificationError as e:
            raise DynamoHttpError(
                "TLSError", f"the certificate of {self.url} could not be verified "
                f"({e.verify_message}): point AWS_CA_BUNDLE (or ca_bundle in the AWS config) "
                "at the CA that signed it", retryable=False) from e

    def _frozen_credentials(self) -> Any:
        try:
            return self._credentials.get_frozen_credentials()
        except Exception as e:  # a refresh (STS, SSO, a credential process...) that failed
            raise CredentialsError(f"DynamoDB: the AWS credentials could not be refreshed: "
                                   f"{type(e).__name__}: {e}") from e

    def _headers(self, body: bytes) -> dict[str, str]:
        """The signed headers of one BatchGetItem POST (lower-case names; Host apart), by
        botocore's SigV4Auth at the current time."""
        # Host given as SigV4Auth derives it (above): the same signature, without deriving it
        # from the URL twice per request (a third of the signing's CPU)
        request = self._request_cls(method="POST", url=self.sign_url, data=body,
                                    headers={"Content-Type": CONTENT_TYPE,
                                             "X-Amz-Target": TARGET, "Host": self.host_header})
        self._auth_cls(self._frozen_credentials(), "dynamodb", self.region).add_auth(request)
        return {k.lower(): v for k, v in request.headers.items() if k != "Host"}

    def _send(self, slot: int, body: bytes, headers: dict[str, str]) -> _Wire:
        conns: list[_Wire | None] = self._local.__dict__.setdefault("conns", [])
        while len(conns) <= slot:
            conns.append(None)
        data = "".join([f"POST {self.target} HTTP/1.1\r\nHost: {self.host_header}\r\n"
                        f"Accept-Encoding: identity\r\nUser-Agent: {self._user_agent}\r\n"
                        f"Content-Length: {len(body)}\r\n",
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
        try:
            out: dict[str, Any] = orjson.loads(data) if data else {}
        except orjson.JSONDecodeError:
            out = {"message": data[:200].decode("latin-1")}
        if status != 200:
            kind = str(out.get("__type", f"HTTP {status}")).rsplit("#", 1)[-1]
            raise DynamoHttpError(kind, str(out.get("message", out.get("Message", ""))),
                                  kind in _RETRYABLE or status >= 500)
        return out

    def batch_get_all(self, requests: list[dict[str, Any]]) -> list[dict[str, Any] | Exception]:
        """Several BatchGetItem calls in flight at once from the calling thread, one kept-alive
        connection each: all are sent, then all answers read (one round trip of latency, no
        thread hand-offs). Answers keep DynamoDB's JSON shape: binary values stay base64
        strings. A call that failed is returned as its exception; credentials that cannot be
        refreshed raise `CredentialsError` before anything is sent."""
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

    def close(self) -> None:
        """Close this thread's connections."""
        for conn in self._local.__dict__.get("conns", []):
            if conn is not None:
                conn.close()
        self._local.__dict__["conns"] = []
