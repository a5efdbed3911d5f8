"""The tricky-request corpus: exact bytes, and what a correct server may answer to each.

`allowed` names what may come back: "2xx" (served correctly: the request is valid), "4xx",
"drop" (the server closes or resets without a response: allowed only where RFC 9112 does not
require an answer: garbage, oversized heads, broken chunk framing, a client that hung up
mid-message), and the two 5xx codes RFC 9110/9112 prescribe for exactly these inputs, "501"
(an unknown transfer coding or method) and "505" (an HTTP version not supported). Any other
5xx, a reset before the answer to a valid request, and a hang (no answer within the socket
timeout) always fail. `close_after_2xx`: the framing was ambiguous (RFC 9112 §6.1/§6.3), so a
server that serves it anyway must close the connection after the response (otherwise the
rest of the bytes can smuggle a request). Every case must produce at most `want` responses: an
extra one means the server split one message into two.
"""

from __future__ import annotations

from dataclasses import dataclass

H = b"127.0.0.1"
AT = b"2024-01-31T00:00:00"
FEAT = b'{"entities":[{"merchant_id":3}],"at":"' + AT + b'"}'
ROUTE = b"/v1/features/merchant_risk"
JSON = (b"Content-Type", b"application/json")

OK = frozenset({"2xx"})
BAD = frozenset({"4xx"})
BAD_OR_DROP = frozenset({"4xx", "drop"})
EITHER = frozenset({"2xx", "4xx"})
CODING = frozenset({"4xx", "501"})  # RFC 9112 §6.1: an unknown transfer coding SHOULD be 501
METHOD = frozenset({"4xx", "501"})  # RFC 9110 §9.1: an unknown method SHOULD be 501
VERSION = frozenset({"4xx", "505", "drop"})  # RFC 9110 §6.2 / §15.6.6


@dataclass(frozen=True)
class Case:
    id: str
    why: str
    segments: tuple[bytes, ...]
    allowed: frozenset[str]
    want: int = 1
    head_only: bool = False  # a HEAD: responses carry no body
    shut_wr: bool = False  # half-close after sending (the client gave up mid-message)
    close_after_2xx: bool = False
    json_key: str | None = None  # a 2xx body must be a JSON object with this key
    pause: float = 0.0  # seconds between segments


def head(method: bytes = b"GET", target: bytes = b"/healthz",
         headers: tuple[tuple[bytes, bytes], ...] = ((b"Host", H),),
         version: bytes = b"HTTP/1.1", eol: bytes = b"\r\n") -> bytes:
    lines = [method + b" " + target + b" " + version]
    lines += [k + b": " + v for k, v in headers]
    return eol.join(lines) + eol + eol


def post(body: bytes, *extra: tuple[bytes, bytes], target: bytes = ROUTE,
         ctype: bytes | None = b"application/json", version: bytes = b"HTTP/1.1") -> bytes:
    hs: list[tuple[bytes, bytes]] = [(b"Host", H)]
    if ctype is not None:
        hs.append((b"Content-Type", ctype))
    hs += [*extra, (b"Content-Length", str(len(body)).encode())]
    return head(b"POST", target, tuple(hs), version) + body


def chunks(body: bytes, size: int = 16) -> bytes:
    out = b"".join(b"%x\r\n%s\r\n" % (len(body[i:i + size]), body[i:i + size])
                   for i in range(0, len(body), size))
    return out + b"0\r\n\r\n"


def raw_post(headers: bytes, body: bytes, target: bytes = ROUTE,
             version: bytes = b"HTTP/1.1") -> bytes:
    """A POST whose header lines after Host/Content-Type are given verbatim (CRLF-terminated)."""
    return (b"POST " + target + b" " + version + b"\r\nHost: " + H
            + b"\r\nContent-Type: application/json\r\n" + headers + b"\r\n" + body)


def split(data: bytes, size: int = 65536) -> tuple[bytes, ...]:
    return tuple(data[i:i + size] for i in range(0, len(data), size))


def _case(id: str, why: str, data: bytes | tuple[bytes, ...], allowed: frozenset[str],
          **kw: object) -> Case:
    segments = data if isinstance(data, tuple) else (data,)
    return Case(id, why, segments, allowed, **kw)  # type: ignore[arg-type]


GET = head()
TE = (b"Transfer-Encoding", b"chunked")
CH = chunks(FEAT)
NESTED = b"[" * 100_000 + b"]" * 100_000

VALID = [
    _case("get-healthz", "plain GET /healthz", GET, OK, json_key="status"),
    _case("post-features", "the feature route, Content-Length framing", post(FEAT), OK,
          json_key="features"),
    _case("post-chunked", "chunked request body (16-byte chunks)",
          head(b"POST", ROUTE, ((b"Host", H), JSON, TE)) + CH, OK, json_key="features"),
    _case("chunk-extension", "chunk-ext `;name=value` is valid (RFC 9112 §7.1.1)",
          head(b"POST", ROUTE, ((b"Host", H), JSON, TE))
          + b"%x;name=value\r\n%s\r\n0\r\n\r\n" % (len(FEAT), FEAT), OK, json_key="features"),
    # 2xx, or a 400: granian's RSGI body stream shows a trailer section exactly as it shows a
    # broken chunked body (featql.server.rsgi._read_chunks), and a broken body must never be
    # served as a whole one, so the RSGI entry refuses both
    _case("chunked-trailer", "a trailer field after the last chunk (RFC 9112 §7.1.2)",
          head(b"POST", ROUTE, ((b"Host", H), JSON, TE)) + CH[:-2] + b"X-Trailer: 1\r\n\r\n",
          EITHER, json_key="features"),
    _case("lowercase-names", "field names are case-insensitive",
          b"POST " + ROUTE + b" HTTP/1.1\r\nhost: " + H + b"\r\ncontent-type: application/json"
          b"\r\ncontent-length: %d\r\n\r\n%s" % (len(FEAT), FEAT), OK, json_key="features"),
    _case("ows-around-values", "optional whitespace around field values is stripped",
          raw_post(b"X-Note: \t spaced \t\r\nContent-Length:   %d  \r\n" % len(FEAT), FEAT), OK,
          json_key="features"),
    _case("host-with-port", "Host with a port", head(headers=((b"Host", H + b":8080"),)), OK),
    _case("json-charset", "Content-Type with a charset parameter",
          post(FEAT, ctype=b"application/json; charset=utf-8"), OK, json_key="features"),
    _case("query-string", "a query string on /healthz", head(target=b"/healthz?probe=1"), OK),
    _case("head-healthz", "HEAD answers the GET's head without a body",
          head(b"HEAD"), OK, head_only=True),
    _case("expect-100", "Expect: 100-continue, body sent after a pause",
          (head(b"POST", ROUTE, ((b"Host", H), JSON, (b"Expect", b"100-continue"),
                                 (b"Content-Length", b"%d" % len(FEAT)))), FEAT),
          OK, pause=0.3, json_key="features"),
    _case("http10-no-host", "HTTP/1.0 needs no Host", head(headers=(), version=b"HTTP/1.0"),
          OK, json_key="status"),
    _case("http10-post", "HTTP/1.0 POST with Content-Length",
          post(FEAT, version=b"HTTP/1.0"), OK, json_key="features"),
    _case("absolute-form", "absolute-form target: a server MUST accept it (RFC 9112 §3.2.2)",
          head(target=b"http://127.0.0.1/healthz"), OK, json_key="status"),
    _case("pipelined-two", "two requests in one segment: two responses, in order",
          GET + post(FEAT), OK, want=2),
    _case("get-body-then-get", "a GET with a 5-byte body, then a GET: the body is skipped",
          head(headers=((b"Host", H), (b"Content-Length", b"5"))) + b"hello" + GET, OK,
          want=2),
    _case("connection-close", "Connection: close",
          head(headers=((b"Host", H), (b"Connection", b"close"))), OK),
    _case("range-header", "a Range header on /healthz", head(
        headers=((b"Host", H), (b"Range", b"bytes=0-5"))), OK),
    _case("header-6kb", "a 6 KB header value (under common 8 KB limits)",
          head(headers=((b"Host", H), (b"X-Big", b"v" * 6000))), EITHER),
    _case("empty-lines-first", "empty lines before the request line (RFC 9112 §2.2 SHOULD "
          "ignore)", b"\r\n\r\n" + GET, EITHER),
    _case("http-1.2", "a higher minor version is processed as 1.1 (RFC 9110 §2.5)",
          head(version=b"HTTP/1.2"), frozenset({"2xx", "4xx", "505"})),
    _case("same-content-length-twice", "two identical Content-Length lines (RFC 9110 §8.6 "
          "may accept)", raw_post(b"Content-Length: %d\r\nContent-Length: %d\r\n"
                                  % (len(FEAT), len(FEAT)), FEAT), EITHER),
    _case("content-length-list-same", "Content-Length `N, N`",
          raw_post(b"Content-Length: %d, %d\r\n" % (len(FEAT), len(FEAT)), FEAT), EITHER),
    _case("empty-host", "an empty Host value", head(headers=((b"Host", b""),)), EITHER),
    _case("obs-fold", "obs-fold in a header nobody reads: 400 or unfolded (RFC 9112 §5.2)",
          raw_post(b"X-Note: a\r\n folded\r\nContent-Length: %d\r\n" % len(FEAT), FEAT),
          EITHER),
    _case("bare-lf", "bare LF line endings: served or refused, never a hang (RFC 9112 §2.2)",
          head(eol=b"\n"), frozenset({"2xx", "4xx", "drop"})),
    _case("bare-lf-post", "bare LF line endings on the feature route",
          head(b"POST", ROUTE, ((b"Host", H), JSON, (b"Content-Length", b"%d" % len(FEAT))),
               eol=b"\n") + FEAT, frozenset({"2xx", "4xx", "drop"})),
    _case("mixed-eol", "CRLF and LF mixed",
          b"GET /healthz HTTP/1.1\r\nHost: " + H + b"\nAccept: */*\r\n\n",
          frozenset({"2xx", "4xx", "drop"})),
    _case("double-space", "two spaces between request-line parts",
          b"GET  /healthz  HTTP/1.1\r\nHost: " + H + b"\r\n\r\n", BAD_OR_DROP | OK),
    _case("tab-separators", "tabs between request-line parts",
          b"GET\t/healthz\tHTTP/1.1\r\nHost: " + H + b"\r\n\r\n", BAD_OR_DROP | OK),
    _case("upgrade-h2c", "an h2c upgrade offer may be ignored",
          head(headers=((b"Host", H), (b"Connection", b"Upgrade, HTTP2-Settings"),
                        (b"Upgrade", b"h2c"), (b"HTTP2-Settings", b"AAMAAABkAAQCAAAAAAIAAAAA"))),
          EITHER),
    _case("upgrade-websocket", "a websocket upgrade on /healthz",
          head(headers=((b"Host", H), (b"Connection", b"Upgrade"), (b"Upgrade", b"websocket"),
                        (b"Sec-WebSocket-Key", b"dGhlIHNhbXBsZSBub25jZQ=="),
                        (b"Sec-WebSocket-Version", b"13"))), EITHER),
    _case("expect-teapot", "an unknown expectation: 417 or served",
          post(FEAT, (b"Expect", b"teapot")), EITHER),
    _case("percent-encoded-name", "%5F in the service name: decoded (200) or not found",
          post(FEAT, target=b"/v1/features/merchant%5Frisk"), EITHER),
    _case("fragment", "a fragment in the target", head(target=b"/healthz#frag"), EITHER),
    _case("options-star", "OPTIONS * (asterisk-form)", head(b"OPTIONS", b"*"),
          frozenset({"2xx", "4xx", "501"})),
    _case("ctl-in-value", "a CTL (0x01) in a value nobody reads (RFC 9110 §5.5 may keep)",
          head(headers=((b"Host", H), (b"X-Note", b"a\x01b"))), EITHER),
    _case("bare-cr-in-value", "a bare CR inside a value: refused or replaced (RFC 9112 §2.2)",
          head(headers=((b"Host", H), (b"X-Note", b"a\rb"))), EITHER),
    _case("nul-in-value", "NUL in a value: refused or replaced by SP (RFC 9110 §5.5)",
          head(headers=((b"Host", H), (b"X-Note", b"a\x00b"))), EITHER),
    _case("tab-before-te", "HTAB as OWS before `chunked` is valid",
          raw_post(b"Transfer-Encoding:\tchunked\r\n", CH), EITHER),
]

SMUGGLE = frozenset({"2xx", "4xx"})  # with close_after_2xx
TE_HEAD = head(b"POST", ROUTE, ((b"Host", H), JSON, TE))

FRAMING = [
    _case("cl-te", "Content-Length and Transfer-Encoding: 400, or chunked and then close "
          "(RFC 9112 §6.1)", raw_post(b"Content-Length: 4\r\nTransfer-Encoding: chunked\r\n",
                                      CH + GET), SMUGGLE, close_after_2xx=True),
    _case("te-cl", "Transfer-Encoding then a Content-Length longer than the chunks",
          raw_post(b"Transfer-Encoding: chunked\r\nContent-Length: %d\r\n" % (len(CH) + 40),
                   CH + GET), SMUGGLE, close_after_2xx=True),
    _case("te-http10", "Transfer-Encoding in HTTP/1.0: faulty framing, close after "
          "(RFC 9112 §6.1)", raw_post(b"Transfer-Encoding: chunked\r\n", CH + GET,
                                      version=b"HTTP/1.0"), SMUGGLE, close_after_2xx=True),
    _case("te-obs-fold", "Transfer-Encoding folded onto the next line, with a Content-Length",
          raw_post(b"Transfer-Encoding:\r\n chunked\r\nContent-Length: %d\r\n" % len(CH),
                   CH + GET), SMUGGLE, close_after_2xx=True),
    _case("two-content-lengths", "two different Content-Lengths: MUST be 400 "
          "(RFC 9112 §6.3)", raw_post(b"Content-Length: %d\r\nContent-Length: 3\r\n"
                                      % len(FEAT), FEAT), BAD),
    _case("content-length-list-differs", "Content-Length `N, 3`",
          raw_post(b"Content-Length: %d, 3\r\n" % len(FEAT), FEAT), BAD),
    _case("content-length-negative", "Content-Length: -1",
          raw_post(b"Content-Length: -1\r\n", FEAT), BAD),
    _case("content-length-plus", "Content-Length: +N (not 1*DIGIT)",
          raw_post(b"Content-Length: +%d\r\n" % len(FEAT), FEAT), BAD),
    _case("content-length-hex", "Content-Length: 0x10",
          raw_post(b"Content-Length: 0x10\r\n", FEAT), BAD),
    _case("content-length-30-digits", "a Content-Length of 30 digits",
          raw_post(b"Content-Length: " + b"9" * 30 + b"\r\n", FEAT), BAD),
    _case("content-length-inner-space", "Content-Length: `1 0`",
          raw_post(b"Content-Length: 1 0\r\n", FEAT), BAD),
    _case("content-length-empty", "an empty Content-Length", raw_post(
        b"Content-Length: \r\n", FEAT), BAD),
    _case("content-length-1e9-no-body", "Content-Length of 1 GB, no body sent: 413 before "
          "the body, not a wait for it", raw_post(b"Content-Length: 1000000000\r\n", b""), BAD),
    _case("body-over-limit", "a 2 MB body with its Content-Length (limit 1 MB): 413",
          split(raw_post(b"Content-Length: %d\r\n" % (2 << 20), b"{" + b" " * ((2 << 20) - 1))),
          BAD),
    _case("body-shorter-than-cl", "the client half-closes before the announced body ends",
          raw_post(b"Content-Length: %d\r\n" % (len(FEAT) + 50), FEAT), BAD_OR_DROP,
          shut_wr=True),
    _case("te-chunked-twice", "chunked applied twice (RFC 9112 §6.1)",
          raw_post(b"Transfer-Encoding: chunked, chunked\r\n", chunks(CH)), CODING),
    _case("te-gzip-chunked", "an unsupported coding before chunked",
          raw_post(b"Transfer-Encoding: gzip, chunked\r\n", CH), CODING),
    _case("te-chunked-not-last", "chunked not the final coding: MUST be 400 (RFC 9112 §6.3)",
          raw_post(b"Transfer-Encoding: chunked, gzip\r\n", CH), BAD),
    _case("te-identity", "Transfer-Encoding: identity (removed from HTTP/1.1)",
          raw_post(b"Transfer-Encoding: identity\r\nContent-Length: %d\r\n" % len(FEAT), FEAT),
          CODING),
    _case("te-xchunked", "Transfer-Encoding: xchunked",
          raw_post(b"Transfer-Encoding: xchunked\r\n", CH), CODING),
    _case("te-space-before-colon", "whitespace between field name and colon: MUST be 400 "
          "(RFC 9112 §5.1)", raw_post(b"Transfer-Encoding : chunked\r\nContent-Length: %d\r\n"
                                      % len(CH), CH), BAD),
    _case("te-vertical-tab", "a vertical tab before `chunked`",
          raw_post(b"Transfer-Encoding:\x0bchunked\r\nContent-Length: %d\r\n" % len(CH), CH),
          BAD),
    _case("chunk-size-not-hex", "chunk size `zz`", TE_HEAD + b"zz\r\n" + FEAT + b"\r\n0\r\n\r\n",
          BAD_OR_DROP),
    _case("chunk-size-leading-space", "chunk size with leading whitespace",
          TE_HEAD + b" %x\r\n%s\r\n0\r\n\r\n" % (len(FEAT), FEAT), BAD_OR_DROP),
    _case("chunk-size-overflow", "a 24-digit hex chunk size",
          TE_HEAD + b"f" * 24 + b"\r\n" + FEAT + b"\r\n0\r\n\r\n", BAD_OR_DROP),
    _case("chunk-size-negative", "chunk size -5", TE_HEAD + b"-5\r\nhello\r\n0\r\n\r\n",
          BAD_OR_DROP),
    _case("chunk-size-0x", "chunk size `0x5`", TE_HEAD + b"0x5\r\nhello\r\n0\r\n\r\n",
          BAD_OR_DROP),
    _case("chunk-longer-than-size", "chunk data longer than its size (no CRLF where due)",
          TE_HEAD + b"5\r\n" + FEAT + b"\r\n0\r\n\r\n", BAD_OR_DROP),
    _case("chunked-no-last-chunk", "the client half-closes before the last chunk",
          TE_HEAD + CH[:-5], BAD_OR_DROP, shut_wr=True),
    _case("chunk-broken-after-whole-json", "a whole JSON body in its chunks, then a bad "
          "chunk size: the body is broken, never served as the JSON before it",
          TE_HEAD + chunks(FEAT)[:-5] + b"zz\r\nab\r\n0\r\n\r\n", BAD_OR_DROP),
    _case("chunk-lines-bare-lf", "chunk lines ended by bare LF",
          TE_HEAD + b"%x\n%s\n0\n\n" % (len(FEAT), FEAT), frozenset({"2xx", "4xx", "drop"})),
    _case("chunked-over-limit", "2 MB of chunks (limit 1 MB): 413 or dropped",
          split(TE_HEAD + chunks(b"[" + b" " * ((2 << 20) - 1), 1 << 16)), BAD_OR_DROP),
]

HEAD_SHAPES = [
    _case("missing-host", "HTTP/1.1 without Host: MUST be 400 (RFC 9112 §3.2)",
          head(headers=()), BAD),
    _case("two-hosts", "two different Host lines: MUST be 400 (RFC 9112 §3.2)",
          head(headers=((b"Host", H), (b"Host", b"evil.example"))), BAD),
    _case("two-hosts-same", "two identical Host lines: still more than one, 400",
          head(headers=((b"Host", H), (b"Host", H))), BAD),
    _case("host-with-space", "an invalid Host value: MUST be 400 (RFC 9112 §3.2)",
          head(headers=((b"Host", b"a b"),)), BAD),
    _case("host-with-userinfo", "userinfo in Host (not uri-host [:port])",
          head(headers=((b"Host", b"user@" + H),)), BAD),
    _case("high-bytes-in-query", "raw 0x80-0xFF bytes in the target (not in its grammar)",
          head(target=b"/healthz?x=\x80\xfe\xff"), BAD),
    _case("high-bytes-in-feature-target", "raw 0xC3 0xA9 after the route",
          post(FEAT, target=ROUTE + b"?n=\xc3\xa9"), BAD),
    _case("nul-in-target", "NUL in the target", head(target=b"/healthz\x00x"), BAD_OR_DROP),
    _case("nul-in-name", "NUL in a field name", head(headers=((b"Host", H), (b"X-\x00", b"1"))),
          BAD_OR_DROP),
    _case("space-in-name", "a space inside a field name",
          head(headers=((b"Host", H), (b"X Note", b"1"))), BAD),
    _case("no-colon", "a header line without a colon",
          b"GET /healthz HTTP/1.1\r\nHost: " + H + b"\r\nX-Note\r\n\r\n", BAD),
    _case("empty-name", "an empty field name", head(headers=((b"Host", H), (b"", b"v"))), BAD),
    _case("indented-host", "the only Host is a whitespace-preceded line: invalid or ignored "
          "(then missing), 400 either way", b"GET /healthz HTTP/1.1\r\n Host: " + H + b"\r\n\r\n",
          BAD),
    _case("host-space-before-colon", "`Host : x`: MUST be 400 (RFC 9112 §5.1)",
          b"GET /healthz HTTP/1.1\r\nHost : " + H + b"\r\n\r\n", BAD),
    _case("header-1mb", "a 1 MB header value: 431 or dropped",
          split(head(headers=((b"Host", H), (b"X-Big", b"v" * (1 << 20))))), BAD_OR_DROP),
    _case("20k-headers", "20,000 header lines: 431 or dropped",
          split(head(headers=((b"Host", H), *((b"X-N%d" % i, b"1") for i in range(20_000))))),
          BAD_OR_DROP),
    _case("url-1mb", "a 1 MB target: 414 or dropped",
          split(head(target=b"/healthz?" + b"a" * (1 << 20))), BAD_OR_DROP),
    _case("url-64kb", "a 64 KB target: 414 or dropped", head(target=b"/" + b"a" * 65536),
          BAD_OR_DROP),
    _case("method-64kb", "a 64 KB method", head(method=b"A" * 65536), METHOD | {"drop"}),
    _case("unknown-method", "method BREW", head(b"BREW"), METHOD),
    _case("lowercase-method", "`get` (methods are case-sensitive)", head(b"get"), METHOD),
    _case("method-with-paren", "`GE(T` (not a token)", head(b"GE(T"), BAD),
    _case("delete-features", "DELETE on the feature route", head(b"DELETE", ROUTE), BAD),
    _case("connect", "CONNECT in authority-form to an origin server",
          head(b"CONNECT", H + b":80"), METHOD),
    _case("no-leading-slash", "origin-form without the leading slash",
          head(target=b"healthz"), BAD),
    _case("dot-segments", "dot segments climbing above the root",
          head(target=b"/v1/../../../etc/passwd"), BAD),
    _case("bad-percent", "`%zz` in the path", post(FEAT, target=b"/v1/features/%zz"), BAD),
    _case("percent-nul", "%00 in the service name",
          post(FEAT, target=ROUTE + b"%00"), BAD),
    _case("http2-preface", "the HTTP/2 connection preface (prior knowledge)",
          b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", VERSION),
    _case("http2-preface-settings", "the preface followed by a SETTINGS frame",
          b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00", VERSION),
    _case("http-3.0", "HTTP/3.0 over TCP", head(version=b"HTTP/3.0"), VERSION),
    _case("http-0.9", "an HTTP/0.9 request line (no version)",
          b"GET /healthz\r\n\r\n", BAD_OR_DROP),
    _case("version-typo", "`HTTX/1.1`", head(version=b"HTTX/1.1"), BAD_OR_DROP),
    _case("version-lowercase", "`http/1.1` (the name is case-sensitive)",
          head(version=b"http/1.1"), BAD_OR_DROP),
    _case("version-no-minor", "`HTTP/1`", head(version=b"HTTP/1"), VERSION),
    _case("only-crlfs", "nothing but empty lines, then the client hangs up",
          b"\r\n" * 8, BAD_OR_DROP, shut_wr=True),
    _case("binary-garbage", "4 KB of binary noise",
          bytes((i * 131 + 7) % 256 for i in range(4096)), BAD_OR_DROP),
    _case("tls-client-hello", "a TLS ClientHello on the plain port",
          bytes.fromhex("16030100a5010000a10303") + bytes(range(32)) + b"\x00\x00\x02\x13\x01"
          + b"\x01\x00" + b"\x00\x76" + bytes(118), BAD_OR_DROP),
    _case("hangup-at-once", "connect and half-close without a byte", b"", BAD_OR_DROP,
          shut_wr=True),
]

BODIES = [
    _case("json-nested-100k-arrays", "100,000 levels of `[`", post(NESTED), BAD),
    _case("json-nested-100k-objects", "100,000 levels of `{\"a\":`",
          post(b'{"a":' * 100_000 + b"1" + b"}" * 100_000), BAD),
    _case("json-nested-in-entities", "100,000 levels of `[` inside `entities`",
          post(b'{"entities":' + NESTED + b"}"), BAD),
    _case("json-nested-in-request", "100,000 levels of `[` inside `request`",
          post(b'{"entities":[{"merchant_id":3}],"request":' + NESTED + b"}"), BAD),
    _case("json-array", "a JSON array, not an object", post(b"[1,2]"), BAD),
    _case("json-string", "a JSON string", post(b'"entities"'), BAD),
    _case("json-null", "JSON null", post(b"null"), BAD),
    _case("json-number", "a JSON number", post(b"42"), BAD),
    _case("json-empty", "an empty body", post(b""), BAD),
    _case("json-invalid-utf8", "invalid UTF-8 inside a JSON string",
          post(b'{"entities":[{"merchant_id":3}],"at":"\xff\xfe"}'), BAD),
    _case("json-lone-surrogate", "an escaped lone surrogate",
          post(b'{"entities":[{"merchant_id":3}],"at":"\\ud800"}'), BAD),
    _case("json-nan", "NaN is not JSON", post(b'{"entities":[{"merchant_id":NaN}]}'), BAD),
    _case("json-1e400", "a number beyond double range",
          post(b'{"entities":[{"merchant_id":1e400}]}'), BAD),
    _case("json-trailing-garbage", "a valid object followed by garbage", post(FEAT + b" xyz"),
          BAD),
    _case("json-truncated", "the object cut short", post(FEAT[:-3]), BAD),
    _case("json-raw-nul", "a raw NUL byte inside a JSON string",
          post(b'{"entities":[{"merchant_id":3}],"at":"2024\x00"}'), BAD),
    _case("json-5000-entities", "5,000 entities (limit 100): 413",
          post(b'{"entities":[' + b",".join([b'{"merchant_id":1}'] * 5000) + b"]}"), BAD),
    _case("json-900kb-key", "a 900 KB key", post(b'{"' + b"k" * 900_000 + b'":1}'), BAD),
    _case("json-bom", "a UTF-8 BOM before the object", post(b"\xef\xbb\xbf" + FEAT), EITHER),
    _case("json-duplicate-keys", "the same key twice",
          post(b'{"entities":[{"merchant_id":3}],"entities":[{"merchant_id":4}]}'), EITHER),
    _case("json-2pow70-key", "an entity key of 2**70",
          post(b'{"entities":[{"merchant_id":%d}]}' % (2 ** 70)), EITHER),
    _case("ctype-text-plain", "text/plain body", post(FEAT, ctype=b"text/plain"), EITHER),
    _case("ctype-form", "a form content type with JSON inside",
          post(FEAT, ctype=b"application/x-www-form-urlencoded"), EITHER),
    _case("ctype-missing", "no Content-Type", post(FEAT, ctype=None), EITHER),
    _case("ctype-multipart", "multipart without a boundary",
          post(FEAT, ctype=b"multipart/form-data"), EITHER),
]

CASES = VALID + FRAMING + HEAD_SHAPES + BODIES
