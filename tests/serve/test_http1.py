"""featql.server.http1: the worker's HTTP/1.1 request parsing and response framing, rule by rule
(every accepted shape and every refusal with its status), chunked bodies split at every byte,
the WSGI environ and the responses' framing."""

from __future__ import annotations

import calendar
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from featql.server.http1 import (
    Chunked,
    Head,
    HTTPError,
    Limits,
    environ,
    error_response,
    find_head_end,
    http_date,
    parse_head,
    read_chunked,
    response,
)

LIM = Limits()
SMALL = Limits(request_line=20, header_fields=2, header_field_size=10)  # head: 48
NOW = float(calendar.timegm((1994, 11, 6, 8, 49, 37)))  # RFC 9110's example date


def raw(line: bytes, *fields: bytes) -> bytes:
    return b"\r\n".join((line, *fields)) + b"\r\n\r\n"


def parse(line: bytes, *fields: bytes, limits: Limits = LIM) -> Head:
    return parse_head(raw(line, *fields), limits)


def refused(line: bytes, *fields: bytes, limits: Limits = LIM) -> HTTPError:
    with pytest.raises(HTTPError) as e:
        parse(line, *fields, limits=limits)
    return e.value


def split_response(data: bytes) -> tuple[bytes, list[tuple[str, str]], bytes]:
    """(status line, [(lower-case name, value)], body) of a serialized response."""
    head, sep, body = data.partition(b"\r\n\r\n")
    assert sep, data
    status, *lines = head.split(b"\r\n")
    fields = [line.decode("latin-1").partition(": ") for line in lines]
    assert all(name and colon and "\r" not in v for name, colon, v in fields), lines
    return status, [(name.lower(), v) for name, _, v in fields], body


# -- heads that are accepted ---------------------------------------------------------------
def test_get_http11() -> None:
    r = raw(b"GET /v1/x?a=1&b=%20 HTTP/1.1", b"Host: t", b"X-Multi:  a b \t", b"Empty:")
    h = parse_head(r, LIM)
    assert (h.method, h.path, h.query, h.version) == ("GET", b"/v1/x", b"a=1&b=%20", "HTTP/1.1")
    assert h.headers == (("host", "t"), ("x-multi", "a b"), ("empty", ""))
    assert (h.length, h.chunked, h.keep_alive, h.expect_continue) == (None, False, True, False)
    assert h.size == len(r)


def test_post_http10_with_content_length() -> None:
    h = parse(b"POST /p HTTP/1.0", b"content-LENGTH: 12", b"Content-Type: text/plain")
    assert (h.method, h.version, h.length, h.chunked, h.keep_alive) == (
        "POST", "HTTP/1.0", 12, False, False)


@pytest.mark.parametrize(("target", "path", "query"), [
    (b"/a/b?x=1&y=2?z", b"/a/b", b"x=1&y=2?z"), (b"/p?", b"/p", b""), (b"/%41%2f", b"/%41%2f", b""),
    (b"*", b"*", b""),
])
def test_target_split(target: bytes, path: bytes, query: bytes) -> None:
    h = parse(b"OPTIONS " + target + b" HTTP/1.1")
    assert (h.path, h.query) == (path, query)


@pytest.mark.parametrize(("version", "fields", "keep"), [
    (b"1.1", (), True), (b"1.1", (b"Connection: close",), False),
    (b"1.1", (b"Connection: CLOSE",), False), (b"1.1", (b"Connection: keep-alive, Close",), False),
    (b"1.1", (b"Connection: upgrade",), True),
    (b"1.1", (b"Connection: keep-alive", b"Connection: close"), False),
    (b"1.0", (), False), (b"1.0", (b"Connection: keep-alive",), True),
    (b"1.0", (b"Connection: Keep-Alive",), True), (b"1.0", (b"Connection: te,keep-alive",), True),
    (b"1.0", (b"Connection: close",), False), (b"1.0", (b"Connection: keep-alived",), False),
])
def test_keep_alive_defaults(version: bytes, fields: tuple[bytes, ...], keep: bool) -> None:
    assert parse(b"GET / HTTP/" + version, *fields).keep_alive is keep


def test_expect() -> None:
    assert parse(b"POST / HTTP/1.1", b"Content-Length: 1", b"Expect: 100-Continue").expect_continue
    # RFC 9110 10.1.1: a 100-continue expectation in an HTTP/1.0 request MUST be ignored
    assert not parse(b"POST / HTTP/1.0", b"Content-Length: 1",
                     b"Expect: 100-continue").expect_continue
    e = refused(b"POST / HTTP/1.1", b"Expect: something-else")
    assert (e.status, e.field) == (417, "headers")


# -- find_head_end -------------------------------------------------------------------------
def test_find_head_end() -> None:
    r = raw(b"GET / HTTP/1.1", b"Host: t")
    assert find_head_end(r + b"GET /next HTTP/1.1\r\n", LIM) == len(r)
    assert find_head_end(bytearray(r), LIM) == len(r)
    for i in range(len(r)):
        assert find_head_end(r[:i], LIM) == -1
    at_limit = b"GET / HTTP/1.1\r\nX: " + b"a" * 25 + b"\r\n\r\n"
    assert find_head_end(at_limit, SMALL) == len(at_limit) == SMALL.head == 48
    assert find_head_end(b"GET /" + b"a" * 15, SMALL) == -1  # request line at its limit
    assert find_head_end(b"GET /" + b"a" * 15 + b"\r\nX: y", SMALL) == -1


@pytest.mark.parametrize("buf", [
    b"GET /" + b"a" * 16,  # 21 bytes, no CRLF yet
    b"GET /" + b"a" * 16 + b" HTTP/1.1\r\n",  # CRLF arrived, blank line not
    b"GET /" + b"a" * 16 + b" HTTP/1.1\r\n\r\n",  # whole head: parse_head refuses it
])
def test_request_line_over_limit(buf: bytes) -> None:
    with pytest.raises(HTTPError) as e:
        if find_head_end(buf, SMALL) >= 0:
            parse_head(buf, SMALL)
    assert (e.value.status, e.value.field) == (414, "path")


@pytest.mark.parametrize("tail", [b"", b"\r\n\r\n"])
def test_head_over_limit(tail: bytes) -> None:
    buf = b"GET / HTTP/1.1\r\n" + b"X: 12345\r\n" * 4 + tail
    assert len(buf) > SMALL.head
    with pytest.raises(HTTPError) as e:
        find_head_end(buf, SMALL)
    assert (e.value.status, e.value.field) == (431, "headers")


# -- heads that are refused ----------------------------------------------------------------
@pytest.mark.parametrize(("line", "status", "field"), [
    (b"GET /", 400, "request_line"), (b"GET / HTTP/1.1 extra", 400, "request_line"),
    (b"GET  / HTTP/1.1", 400, "request_line"), (b"G(T / HTTP/1.1", 400, "request_line"),
    (b"G\xc3\xa9T / HTTP/1.1", 400, "request_line"), (b" / HTTP/1.1", 400, "request_line"),
    (b"GET / HTTP/2.0", 505, "request_line"), (b"GET / HTTP/1.2", 505, "request_line"),
    (b"GET / http/1.1", 400, "request_line"), (b"GET / HTTX/1.1", 400, "request_line"),
    (b"GET a/b HTTP/1.1", 400, "path"), (b"GET http://h/ HTTP/1.1", 400, "path"),
    (b"GET ** HTTP/1.1", 400, "path"), (b"GET /a\x01 HTTP/1.1", 400, "path"),
    (b"GET /a\x7f HTTP/1.1", 400, "path"), (b"GET /a\x00 HTTP/1.1", 400, "path"),
    (b"GET /a\tb HTTP/1.1", 400, "path"),
])
def test_bad_request_line(line: bytes, status: int, field: str) -> None:
    e = refused(line)
    assert (e.status, e.field) == (status, field)


def test_header_count_and_size_limits() -> None:
    lim = Limits(header_fields=2, header_field_size=10)
    assert len(parse(b"GET / HTTP/1.1", b"A: 1", b"X: 1234567", limits=lim).headers) == 2
    e = refused(b"GET / HTTP/1.1", b"A: 1", b"B: 2", b"C: 3", limits=lim)
    assert (e.status, e.field) == (431, "headers")
    e = refused(b"GET / HTTP/1.1", b"X: 12345678", limits=lim)
    assert (e.status, e.field) == (431, "headers")
    assert parse(b"GET / HTTP/1.1", b"X: a\tb\xe9").headers == (("x", "a\tb\xe9"),)  # obs-text


@pytest.mark.parametrize("field", [
    b" folded", b"\tfolded", b"Host a", b"Ho st: a", b"Host : a", b": a", b"H\xc3\xa9: a",
    b"H@st: a", b"X: a\x01b", b"X: a\x7f", b"X: a\rb", b"X: a\nb", b"X: \x00",
])
def test_bad_header_line(field: bytes) -> None:
    e = refused(b"GET / HTTP/1.1", b"Host: t", field)
    assert (e.status, e.field) == (400, "headers")
    assert ("folding" in e.message) is field.startswith((b" ", b"\t"))


@pytest.mark.parametrize("fields", [
    (b"Content-Length: abc",), (b"Content-Length: -1",), (b"Content-Length: +1",),
    (b"Content-Length: 1.0",), (b"Content-Length: 0x10",), (b"Content-Length:",),
    (b"Content-Length: 1 2",), (b"Content-Length: 1", b"Content-Length: 2"),
    (b"Content-Length: 1, 2",), (b"Content-Length: 3,",), (b"Content-Length: \xd9\xa3",),
])
def test_bad_content_length(fields: tuple[bytes, ...]) -> None:
    e = refused(b"POST / HTTP/1.1", *fields)
    assert (e.status, e.field) == (400, "headers")


@pytest.mark.parametrize("fields", [
    (b"Content-Length: 3",), (b"Content-Length: 3", b"content-length: 3"),
    (b"Content-Length: 3, 3",), (b"Content-Length: 003",),
])
def test_identical_content_lengths(fields: tuple[bytes, ...]) -> None:
    assert parse(b"POST / HTTP/1.1", *fields).length == 3


@pytest.mark.parametrize(("version", "fields", "status"), [
    (b"1.1", (b"Content-Length: 3", b"Transfer-Encoding: chunked"), 400),
    (b"1.1", (b"Transfer-Encoding: chunked", b"Content-Length: 3"), 400),
    (b"1.1", (b"Transfer-Encoding:", b"Content-Length: 3"), 400),  # empty TE is still TE
    (b"1.1", (b"Transfer-Encoding: gzip",), 501),
    (b"1.1", (b"Transfer-Encoding: gzip, chunked",), 501),
    (b"1.1", (b"Transfer-Encoding: gzip", b"Transfer-Encoding: chunked"), 501),
    (b"1.1", (b"Transfer-Encoding: chunked, chunked",), 501),
    (b"1.1", (b"Transfer-Encoding: identity",), 501), (b"1.1", (b"Transfer-Encoding: ,",), 501),
    (b"1.0", (b"Transfer-Encoding: chunked",), 400),
])
def test_bad_transfer_encoding(version: bytes, fields: tuple[bytes, ...], status: int) -> None:
    e = refused(b"POST / HTTP/" + version, *fields)
    assert (e.status, e.field) == (status, "headers")


@pytest.mark.parametrize("te", [b"chunked", b"Chunked", b" chunked ,", b"CHUNKED"])
def test_chunked(te: bytes) -> None:
    h = parse(b"POST / HTTP/1.1", b"Transfer-Encoding: " + te)
    assert (h.chunked, h.length) == (True, None)


def test_body_limit() -> None:
    lim = Limits(body=100)
    assert parse(b"POST / HTTP/1.1", b"Content-Length: 100", limits=lim).length == 100
    for n in (b"101", b"99999999999999999999999"):
        e = refused(b"POST / HTTP/1.1", b"Content-Length: " + n, limits=lim)
        assert (e.status, e.field) == (413, "body")


# -- read_chunked --------------------------------------------------------------------------
CHUNKED = b"5\r\nhello\r\n6;name=value;x\r\n world\r\nA \r\n0123456789\r\n0\r\n\r\n"


def test_read_chunked_complete_with_pipelined_bytes_after() -> None:
    buf = bytearray(b"HEAD" + CHUNKED + b"GET /next HTTP/1.1\r\n")
    assert read_chunked(buf, 4, 100) == (b"hello world0123456789", 4 + len(CHUNKED))
    assert read_chunked(b"0\r\n\r\n", 0, 0) == (b"", 5)


def test_read_chunked_trailers() -> None:
    enc = b"3\r\nabc\r\n0;ext\r\nX-Sum: 1\r\nY: 2\r\n\r\nrest"
    assert read_chunked(enc, 0, 100) == (b"abc", len(enc) - 4)


@pytest.mark.parametrize("enc", [CHUNKED, b"3\r\nabc\r\n0\r\nX: 1\r\n\r\n", b"0\r\n\r\n"])
def test_read_chunked_incomplete_at_every_split(enc: bytes) -> None:
    for i in range(len(enc)):
        assert read_chunked(b"xx" + enc[:i], 2, 100) is None, enc[:i]


@pytest.mark.parametrize(("enc", "why"), [
    *((e, "size") for e in (b"g\r\n", b"\r\n", b"-1\r\n", b"0x5\r\n", b"+5\r\n",
                            b"1" * 17 + b"\r\n", b";x\r\n", b"5\r\nhello\r\n\xff\r\n")),
    (b"5" + b" " * 1100, "size line"),  # no CRLF after 1 KiB: not a size line
    *((e, "CRLF") for e in (b"5\r\nhelloXX0\r\n\r\n", b"5\r\nhello\n0\r\n\r\n",
                            b"2\r\nhello\r\n0\r\n\r\n")),  # data not followed by CRLF
])
def test_read_chunked_malformed(enc: bytes, why: str) -> None:
    with pytest.raises(HTTPError) as e:
        read_chunked(enc, 0, 100)
    assert (e.value.status, e.value.field) == (400, "body")
    assert why in e.value.message


def test_read_chunked_limit() -> None:
    assert read_chunked(b"6\r\nabcdef\r\n4\r\nghij\r\n0\r\n\r\n", 0, 10) is not None
    for enc in (b"6\r\nabcdef\r\n5\r\n", b"ffffffff\r\n"):  # refused before the data arrives
        with pytest.raises(HTTPError) as e:
            read_chunked(enc, 0, 10)
        assert (e.value.status, e.value.field) == (413, "body")


def test_read_chunked_bounds_what_is_not_data() -> None:
    padded = b"".join(b"1;" + b"p" * 1000 + b"\r\nx\r\n" for _ in range(100))  # 100 data bytes
    with pytest.raises(HTTPError) as e:
        read_chunked(padded, 0, 1 << 20)
    assert e.value.status == 400
    many = b"0\r\n" + b"X: 1\r\n" * 2000  # trailer lines, each short, never ending
    with pytest.raises(HTTPError) as e:
        read_chunked(many, 0, 100)
    assert e.value.status == 431
    with pytest.raises(HTTPError) as e:
        read_chunked(b"0\r\nX: " + b"1" * 9000, 0, 100)
    assert e.value.status == 431
    one_byte_chunks = b"1\r\nx\r\n" * 5000 + b"0\r\n\r\n"  # much framing but legitimate
    assert read_chunked(one_byte_chunks, 0, 1 << 20) == (b"x" * 5000, len(one_byte_chunks))


TOKEN_TEXT = st.text("abcxyzAZ09-_!#", min_size=1, max_size=8)


@settings(max_examples=200, deadline=None)
@given(body=st.binary(max_size=200), data=st.data())
def test_read_chunked_roundtrip(body: bytes, data: st.DataObject) -> None:
    sizes = data.draw(st.lists(st.integers(1, 64), max_size=len(body) + 1))
    pieces: list[bytes] = []
    pos = 0
    for n in [*sizes, len(body)]:
        if pos < len(body):
            pieces.append(body[pos:pos + n])
            pos += n
    enc = bytearray()
    for piece in [*pieces, b""]:
        size = data.draw(st.sampled_from(["%x", "%X", "%03x"])) % len(piece)
        ext = data.draw(st.lists(st.tuples(TOKEN_TEXT, TOKEN_TEXT), max_size=2))
        enc += size.encode() + b"".join(f";{k}={v}".encode() for k, v in ext) + b"\r\n"
        if piece:
            enc += piece + b"\r\n"
    trailers = data.draw(st.lists(st.tuples(TOKEN_TEXT, TOKEN_TEXT), max_size=3))
    enc += b"".join(f"{k}: {v}\r\n".encode() for k, v in trailers) + b"\r\n"
    assert read_chunked(b"HEAD" + enc + b"NEXT", 4, 200) == (body, 4 + len(enc))
    for i in range(len(enc)):
        assert read_chunked(enc[:i], 0, 200) is None
    # fed as it arrives, in random pieces, resuming from the saved state: the same answer
    cuts = sorted(data.draw(st.lists(st.integers(0, len(enc)), max_size=6)))
    state = Chunked(4)
    for cut in cuts:
        assert read_chunked(b"HEAD" + enc[:cut], 4, 200, state) is None or cut == len(enc)
    assert read_chunked(b"HEAD" + enc + b"NEXT", 4, 200, state) == (body, 4 + len(enc))


def test_read_chunked_resumes_instead_of_rereading() -> None:
    """Tiny chunks arriving in many reads: each read parses only what is new (a full
    re-parse per read would be quadratic in the body on the single-threaded worker)."""
    enc = b"1\r\nx\r\n" * 3000
    state = Chunked(0)
    assert read_chunked(enc[:6 * 1000 + 3], 0, 1 << 20, state) is None
    assert len(state.out) == 1000 and state.pos == 6 * 1000  # kept, not re-derived
    state.out[:] = b"y" * 1000  # a resumed read must not parse the first 1,000 chunks again
    assert read_chunked(enc + b"0\r\n\r\n", 0, 1 << 20, state) == (
        b"y" * 1000 + b"x" * 2000, len(enc) + 5)


# -- environ -------------------------------------------------------------------------------
def test_environ() -> None:
    h = parse(b"POST /caf%C3%A9/%2F?q=%20a+b HTTP/1.1", b"Host: t", b"Content-Type: text/csv",
              b"Content-Length: 4", b"Accept: a", b"X-Forwarded-For: 1.2.3.4",
              b"X_Forwarded_For: 6.6.6.6", b"accept: b", b"Transfer-Encoding-X: y")
    env = environ(h, b"a,b\n", ("srv", "8000"), ("10.0.0.1", "5555"))
    assert {k: env[k] for k in ("REQUEST_METHOD", "SCRIPT_NAME", "PATH_INFO", "QUERY_STRING",
                                "RAW_URI", "SERVER_NAME", "SERVER_PORT", "SERVER_PROTOCOL",
                                "REMOTE_ADDR", "REMOTE_PORT")} == {
        "REQUEST_METHOD": "POST", "SCRIPT_NAME": "", "PATH_INFO": "/caf\xc3\xa9//",
        "QUERY_STRING": "q=%20a+b", "RAW_URI": "/caf%C3%A9/%2F?q=%20a+b", "SERVER_NAME": "srv",
        "SERVER_PORT": "8000", "SERVER_PROTOCOL": "HTTP/1.1", "REMOTE_ADDR": "10.0.0.1",
        "REMOTE_PORT": "5555"}
    assert (env["wsgi.version"], env["wsgi.url_scheme"], env["wsgi.multithread"],
            env["wsgi.multiprocess"], env["wsgi.run_once"]) == ((1, 0), "http", False, True, False)
    assert env["wsgi.input"].read() == b"a,b\n"
    assert callable(env["wsgi.errors"].write)
    assert (env["CONTENT_TYPE"], env["CONTENT_LENGTH"]) == ("text/csv", "4")
    assert env["HTTP_ACCEPT"] == "a,b"
    assert env["HTTP_X_FORWARDED_FOR"] == "1.2.3.4"  # the underscored name is dropped
    assert env["HTTP_TRANSFER_ENCODING_X"] == "y"
    assert not {"HTTP_CONTENT_TYPE", "HTTP_CONTENT_LENGTH"} & set(env)
    assert all(isinstance(v, str) for k, v in env.items() if k.isupper())


def test_environ_without_body_and_chunked() -> None:
    env = environ(parse(b"GET /%zz HTTP/1.0", b"X_Only: 1"), b"", ("s", "80"), ("c", "1"))
    assert (env["PATH_INFO"], env["QUERY_STRING"], env["RAW_URI"]) == ("/%zz", "", "/%zz")
    assert "CONTENT_LENGTH" not in env and "CONTENT_TYPE" not in env
    assert not [k for k in env if k.startswith("HTTP_")]
    h = parse(b"POST / HTTP/1.1", b"Transfer-Encoding: chunked")
    env = environ(h, b"12345", ("s", "80"), ("c", "1"))
    assert env["CONTENT_LENGTH"] == "5"
    assert "HTTP_TRANSFER_ENCODING" not in env
    assert env["wsgi.input"].read() == b"12345"


# -- responses -----------------------------------------------------------------------------
def test_http_date() -> None:
    assert http_date(NOW) == http_date(NOW + 0.9) == b"Sun, 06 Nov 1994 08:49:37 GMT"
    assert http_date(0) == b"Thu, 01 Jan 1970 00:00:00 GMT"
    assert http_date(NOW + 1) == b"Sun, 06 Nov 1994 08:49:38 GMT"


def test_response() -> None:
    out = response("200 OK", [("Content-Type", "application/json"), ("X-A", "1"), ("X-A", "2")],
                   b'{"a":1}', keep_alive=True, head_only=False, now=NOW)
    assert out.startswith(b"HTTP/1.1 200 OK\r\n")
    status, fields, body = split_response(out)
    assert status == b"HTTP/1.1 200 OK"
    assert fields == [("content-type", "application/json"), ("x-a", "1"), ("x-a", "2"),
                      ("content-length", "7"), ("connection", "keep-alive"),
                      ("date", "Sun, 06 Nov 1994 08:49:37 GMT")]
    assert body == b'{"a":1}'


def test_response_replaces_framing_headers() -> None:
    app = [("Content-Length", "999"), ("connection", "keep-alive"), ("DATE", "yesterday"),
           ("Transfer-Encoding", "chunked"), ("X-Ok", "1")]
    _, fields, body = split_response(response("201 Created", app, b"abc", keep_alive=False,
                                              head_only=False, now=NOW))
    assert dict(fields) == {"x-ok": "1", "content-length": "3", "connection": "close",
                            "date": "Sun, 06 Nov 1994 08:49:37 GMT"}
    assert len(fields) == 4 and body == b"abc"


def test_head_response_has_length_but_no_body() -> None:
    out = response("200 OK", [], b"x" * 50, keep_alive=True, head_only=True, now=NOW)
    _, fields, body = split_response(out)
    assert dict(fields)["content-length"] == "50" and body == b""
    assert out.endswith(b"\r\n\r\n")


@pytest.mark.parametrize("status", ["204 No Content", "304 Not Modified"])
@pytest.mark.parametrize("head_only", [False, True])
def test_no_body_statuses(status: str, head_only: bool) -> None:
    out = response(status, [("ETag", '"x"')], b"ignored", keep_alive=True, head_only=head_only,
                   now=NOW)
    _, fields, body = split_response(out)
    assert body == b"" and "content-length" not in dict(fields)
    assert dict(fields)["etag"] == '"x"'


@pytest.mark.parametrize("header", [("X", "a\r\nSet-Cookie: s=1"), ("X", "a\nb"), ("X", "a\rb"),
                                    ("X", "\x00"), ("X\r\nY", "1"), ("X Y", "1"), ("", "1")])
def test_response_splitting_refused(header: tuple[str, str]) -> None:
    with pytest.raises(ValueError):
        response("200 OK", [header], b"", keep_alive=True, head_only=False, now=NOW)


@pytest.mark.parametrize(("status", "code", "reason"), [
    (413, "body_too_large", "Content Too Large"), (400, "bad_http", "Bad Request"),
    (431, "bad_http", "Request Header Fields Too Large"), (414, "bad_http", "URI Too Long"),
    (505, "bad_http", "HTTP Version Not Supported"), (501, "bad_http", "Not Implemented"),
    (417, "bad_http", "Expectation Failed"), (499, "bad_http", "Error"),
])
def test_error_response(status: int, code: str, reason: str) -> None:
    line, fields, body = split_response(error_response(status, "why", "body", NOW))
    assert line == f"HTTP/1.1 {status} {reason}".encode()
    assert json.loads(body) == {"error": {"code": code, "message": "why", "field": "body"}}
    assert dict(fields) == {"content-type": "application/json", "content-length": str(len(body)),
                            "connection": "close", "date": "Sun, 06 Nov 1994 08:49:37 GMT"}
