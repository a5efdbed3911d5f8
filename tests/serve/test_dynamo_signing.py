"""The lean DynamoDB reader against botocore itself: the same signature for the same request
(regions, session tokens, IPv6 and explicit-port endpoints, non-ASCII names, paths that need
encoding), the same request line and Host on the wire, the CA bundle and proxies botocore
honours (end to end through a local TLS endpoint and a local proxy), credentials that cannot
be refreshed (a 503 at the server, not a 500), and retries that stop at the read deadline."""

from __future__ import annotations

import datetime as dt
import ipaddress
import select
import socket
import ssl
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from featql.online.base import OnlineStoreError
from featql.online.dynamo_http import BatchGetClient

FROZEN = dt.datetime(2026, 3, 4, 5, 6, 7)
SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
_ENV = ("AWS_CA_BUNDLE", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "HTTP_PROXY", "HTTPS_PROXY",
        "http_proxy", "https_proxy", "NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy",
        "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE")


@pytest.fixture(autouse=True)
def clean_env(aws_env: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """No CA bundle, proxy or credentials from the machine: each test sets its own."""
    for name in _ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # no credential look-up at IMDS


@pytest.fixture()
def frozen(monkeypatch: pytest.MonkeyPatch) -> None:
    from botocore import auth

    monkeypatch.setattr(auth, "get_current_datetime", lambda *a, **k: FROZEN)


class _Raw:
    def __init__(self, body: bytes):
        self.body = body

    def stream(self, *_a: Any, **_k: Any) -> Iterator[bytes]:
        yield self.body


def botocore_request(endpoint: str, region: str, token: str | None,
                     request_items: dict[str, Any]) -> Any:
    """The BatchGetItem request a real botocore client prepares (signed, ready to send),
    caught at `before-send` and answered there: nothing goes on the network."""
    import boto3
    from botocore.awsrequest import AWSResponse

    client = boto3.session.Session().client(
        "dynamodb", region_name=region, endpoint_url=endpoint, aws_access_key_id="AKIDEXAMPLE",
        aws_secret_access_key=SECRET, aws_session_token=token)
    seen: list[Any] = []

    def catch(request: Any, **_kw: Any) -> AWSResponse:
        seen.append(request)
        return AWSResponse(request.url, 200, {}, _Raw(b'{"Responses": {}}'))

    client.meta.events.register("before-send.dynamodb.BatchGetItem", catch)
    client.batch_get_item(RequestItems=request_items)
    return seen[0]


CASES = [
    ("https://dynamodb.eu-west-3.amazonaws.com", "eu-west-3", None, "t"),
    ("https://dynamodb.us-east-1.amazonaws.com:443", "us-east-1", "FwoGZXIvYXdzEXAMPLE//tok=",
     "featql_dev"),
    ("http://localhost:80", "us-west-2", None, "t"),
    ("https://dynamodb.ap-southeast-2.amazonaws.com:8443", "ap-southeast-2", "tok", "t"),
    ("http://[::1]:8000", "us-west-2", None, "tablé_ü"),
    ("https://[2001:db8::1]:443", "sa-east-1", "session-token", "表"),
    ("http://[::1]", "eu-central-1", None, "t"),
    ("http://127.0.0.1:8000/some path/é%41x/", "eu-central-1", "tok", "t"),
    ("https://DynamoDB.Example.com/prefix/../v1;x=1", "il-central-1", None, "été"),
]


@pytest.mark.parametrize(("endpoint", "region", "token", "table"), CASES,
                         ids=[c[0] for c in CASES])
def test_signature_equals_botocores(endpoint: str, region: str, token: str | None, table: str,
                                    frozen: None) -> None:
    from botocore.credentials import Credentials

    items = {table: {"Keys": [{"item": {"S": "user#[\"é\"]"}}], "ProjectionExpression": "#d",
                     "ExpressionAttributeNames": {"#d": "d:vïew"}}}
    theirs = botocore_request(endpoint, region, token, items)
    reader = BatchGetClient(endpoint, region, Credentials("AKIDEXAMPLE", SECRET, token))
    ours = reader._headers(theirs.body)
    sent = {k.lower(): v.decode() if isinstance(v, bytes) else v
            for k, v in theirs.headers.items()}  # a prepared request's values are bytes
    assert ours["authorization"] == sent["authorization"]
    assert ours["x-amz-date"] == sent["x-amz-date"] == "20260304T050607Z"
    assert ours.get("x-amz-security-token") == sent.get("x-amz-security-token") == token
    assert reader.sign_url == theirs.url
    # our own body (orjson) of the same request signs the same way as botocore would sign it
    body = orjson.dumps({"RequestItems": items})
    again = botocore_auth(body, reader.sign_url, region, token)
    assert reader._headers(body)["authorization"] == again


def botocore_auth(body: bytes, url: str, region: str, token: str | None) -> str:
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    req = AWSRequest(method="POST", url=url, data=body, headers={
        "Content-Type": "application/x-amz-json-1.0",
        "X-Amz-Target": "DynamoDB_20120810.BatchGetItem"})
    SigV4Auth(Credentials("AKIDEXAMPLE", SECRET, token), "dynamodb", region).add_auth(req)
    return str(req.headers["Authorization"])


def test_host_header_drops_default_ports_and_keeps_ipv6_brackets() -> None:
    from botocore.credentials import Credentials

    creds = Credentials("a", "b")
    want = {"https://dynamodb.us-east-1.amazonaws.com:443": "dynamodb.us-east-1.amazonaws.com",
            "http://Local.Host:80": "local.host", "http://127.0.0.1:8000": "127.0.0.1:8000",
            "https://[2001:db8::1]:443": "[2001:db8::1]", "http://[::1]:8000": "[::1]:8000"}
    for url, host in want.items():
        assert BatchGetClient(url, "us-east-1", creds).host_header == host, url


class Recorder:
    """A 127.0.0.1 (or ::1) server answering every request with an empty BatchGetItem answer,
    recording each request's line and Host header as sent."""

    def __init__(self, family: socket.AddressFamily = socket.AF_INET):
        host = "::1" if family == socket.AF_INET6 else "127.0.0.1"
        self.server = socket.create_server((host, 0), family=family)
        self.port = self.server.getsockname()[1]
        self.heads: list[tuple[str, str]] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            with conn:
                head, _ = read_request(conn)
                if head is None:
                    continue
                lines = head.decode("latin-1").split("\r\n")
                host = next(v.strip() for k, _, v in (x.partition(":") for x in lines[1:])
                            if k.lower() == "host")
                self.heads.append((lines[0], host))
                answer = b'{"Responses": {}}'
                conn.sendall(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: %d\r\n"
                             b"\r\n%s" % (len(answer), answer))

    def close(self) -> None:
        self.server.close()


def read_request(conn: socket.socket) -> tuple[bytes | None, bytes]:
    """One request's head and Content-Length body (None at a closed connection)."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        got = conn.recv(65536)
        if not got:
            return None, b""
        buf += got
    head, _, body = buf.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(body) < length:
        body += conn.recv(65536)
    return head, body


def _has_ipv6() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.parametrize("path", ["", "/", "/some path/é%41x/../y", "/v1;x=1/"])
@pytest.mark.parametrize("family", [socket.AF_INET, socket.AF_INET6], ids=["ipv4", "ipv6"])
def test_request_line_and_host_on_the_wire_equal_botocores(path: str,
                                                           family: socket.AddressFamily
                                                           ) -> None:
    import boto3
    from botocore.credentials import Credentials

    if family == socket.AF_INET6 and not _has_ipv6():
        pytest.skip("no IPv6 loopback on this machine")
    server = Recorder(family)
    try:
        host = "[::1]" if family == socket.AF_INET6 else "127.0.0.1"
        endpoint = f"http://{host}:{server.port}{path}"
        client = boto3.session.Session().client(
            "dynamodb", region_name="us-east-1", endpoint_url=endpoint,
            aws_access_key_id="k", aws_secret_access_key="s")
        client.batch_get_item(RequestItems={"t": {"Keys": [{"item": {"S": "x"}}]}})
        reader = BatchGetClient(endpoint, "us-east-1", Credentials("k", "s"))
        got = reader.batch_get_all([{"t": {"Keys": [{"item": {"S": "x"}}]}}])
        assert got == [{"Responses": {}}]
        assert len(server.heads) == 2 and server.heads[0] == server.heads[1], server.heads
    finally:
        server.close()


# -- TLS: a CA bundle end to end --------------------------------------------------------------
def make_ca_and_server_cert(folder: Path) -> tuple[Path, Path, Path]:
    """A self-signed CA and a server certificate for 127.0.0.1 it signed: (ca, cert, key)."""
    crypto = pytest.importorskip("cryptography")
    del crypto
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = dt.datetime.now(dt.UTC)

    def cert(subject: str, key: Any, issuer: str, signer: Any, ca: bool) -> Any:
        b = (x509.CertificateBuilder()
             .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
             .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
             .public_key(key.public_key()).serial_number(x509.random_serial_number())
             .not_valid_before(now - dt.timedelta(hours=1))
             .not_valid_after(now + dt.timedelta(days=1))
             .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
        if ca:
            b = b.add_extension(x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True,
                crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
        else:
            b = b.add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        return b.sign(signer, hashes.SHA256())

    ca_key, srv_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(
        ec.SECP256R1())
    ca = cert("featql test CA", ca_key, "featql test CA", ca_key, True)
    srv = cert("127.0.0.1", srv_key, "featql test CA", ca_key, False)
    pem = serialization.Encoding.PEM
    paths = folder / "ca.pem", folder / "server.pem", folder / "server.key"
    paths[0].write_bytes(ca.public_bytes(pem))
    paths[1].write_bytes(srv.public_bytes(pem))
    paths[2].write_bytes(srv_key.private_bytes(pem, serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
    return paths


def pump(a: socket.socket, b: socket.socket) -> None:
    """Copy bytes both ways until either side closes."""
    try:
        while True:
            ready, _, _ = select.select([a, b], [], [], 10)
            if not ready:
                return
            for s in ready:
                data = s.recv(65536)
                if not data:
                    return
                (b if s is a else a).sendall(data)
    except OSError:
        return
    finally:
        a.close()
        b.close()


class TlsForwarder:
    """TLS terminated on 127.0.0.1, the plain bytes forwarded to an upstream port."""

    def __init__(self, cert: Path, key: Path, upstream: int):
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(cert, key)
        self.upstream = upstream
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.handshakes = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                raw, _ = self.server.accept()
            except OSError:
                return
            threading.Thread(target=self._one, args=(raw,), daemon=True).start()

    def _one(self, raw: socket.socket) -> None:
        try:
            conn = self.ctx.wrap_socket(raw, server_side=True)
        except (OSError, ssl.SSLError):  # the client refused our certificate
            raw.close()
            return
        self.handshakes += 1
        pump(conn, socket.create_connection(("127.0.0.1", self.upstream)))

    def close(self) -> None:
        self.server.close()


def _port(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


@pytest.mark.slow
def test_ca_bundle_end_to_end(dynalite: str, tmp_path: Path,
                              monkeypatch: pytest.MonkeyPatch) -> None:
    from featql.online.base import Cell, version
    from featql.online.dynamodb import DynamoStore

    ca, cert, key = make_ca_and_server_cert(tmp_path)
    tls = TlsForwarder(cert, key, _port(dynalite))
    url, ws = f"https://127.0.0.1:{tls.port}", "tls" + uuid.uuid4().hex[:8]
    try:
        monkeypatch.setenv("AWS_CA_BUNDLE", str(ca))
        s = DynamoStore(ws, endpoint_url=url, table_prefix="featql_test_")  # boto3 writes
        assert s.read_path == "lean" and s.fast_reads
        s.write([Cell("user#[1]", "v", version(1, None, b'[1,null,[7]]'), b'[1,null,[7]]')])
        before = tls.handshakes
        assert s.read(["user#[1]"], ["v"]) == {"user#[1]": {"v": b'[1,null,[7]]'}}
        assert tls.handshakes == before + 1  # the lean reader's own TLS connection
        monkeypatch.delenv("AWS_CA_BUNDLE")
        plain = DynamoStore(ws, endpoint_url=url, table_prefix="featql_test_", create=False)
        with pytest.raises(OnlineStoreError, match=r"could not be verified.*AWS_CA_BUNDLE"):
            plain.read(["user#[1]"], ["v"])
        unverified = DynamoStore(ws, endpoint_url=url, table_prefix="featql_test_",
                                 create=False, verify=False)
        assert unverified.read(["user#[1]"], ["v"]) == {"user#[1]": {"v": b'[1,null,[7]]'}}
        given = DynamoStore(ws, endpoint_url=url, table_prefix="featql_test_", create=False,
                            verify=str(ca))  # client(verify=<bundle>)
        assert given.read(["user#[1]"], ["v"]) == {"user#[1]": {"v": b'[1,null,[7]]'}}
        config = tmp_path / "aws-config"  # `ca_bundle` in the AWS config file
        config.write_text(f"[default]\nca_bundle = {ca}\n")
        monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
        from_config = DynamoStore(ws, endpoint_url=url, table_prefix="featql_test_",
                                  create=False)
        assert from_config.read(["user#[1]"], ["v"]) == {"user#[1]": {"v": b'[1,null,[7]]'}}
        s.drop()  # its client was made with the bundle
    finally:
        tls.close()


def test_verify_is_resolved_like_botocore(tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    import botocore.session

    from featql.online.dynamodb import effective_verify

    assert effective_verify(botocore.session.get_session(), None) is True
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/requests.pem")
    assert effective_verify(botocore.session.get_session(), None) == "/requests.pem"
    config = tmp_path / "aws-config"
    config.write_text("[default]\nca_bundle = /config.pem\n")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    assert effective_verify(botocore.session.get_session(), None) == "/config.pem"
    monkeypatch.setenv("AWS_CA_BUNDLE", "/env.pem")
    session = botocore.session.get_session()
    assert effective_verify(session, None) == "/env.pem"
    assert effective_verify(session, False) is False
    assert effective_verify(session, "/given.pem") == "/given.pem"


# -- proxies ------------------------------------------------------------------------------------
class Proxy:
    """An HTTP proxy on 127.0.0.1: absolute-form requests forwarded (one upstream request per
    request, answers framed by Content-Length) and CONNECT tunnels; counts both."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.server.getsockname()[1]}"
        self.forwarded: list[bytes] = []
        self.tunnels = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            threading.Thread(target=self._client, args=(conn,), daemon=True).start()

    def _client(self, conn: socket.socket) -> None:
        try:
            while True:
                head, body = read_request(conn)
                if head is None:
                    return
                line, _, rest = head.partition(b"\r\n")
                method, target, version_ = line.split(b" ")
                if method == b"CONNECT":
                    host, _, port = target.rpartition(b":")
                    up = socket.create_connection((host.decode(), int(port)))
                    self.tunnels += 1
                    conn.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
                    pump(conn, up)
                    return
                netloc, _, path = target.split(b"//", 1)[1].partition(b"/")
                host, _, port = netloc.rpartition(b":") if b":" in netloc else (netloc, b"", b"80")
                self.forwarded.append(head + b"\r\n\r\n" + body)
                with socket.create_connection((host.decode(), int(port))) as up:
                    up.sendall(b"%s /%s %s\r\n%s\r\n\r\n%s" % (method, path, version_, rest,
                                                               body))
                    status_head, answer = read_response(up)
                conn.sendall(status_head + b"\r\n\r\n" + answer)
        except OSError:
            return
        finally:
            conn.close()


def read_response(conn: socket.socket) -> tuple[bytes, bytes]:
    head, body = read_request(conn)  # same framing: a head, then Content-Length bytes
    assert head is not None
    return head, body


def _batch_gets(proxy: Proxy) -> int:
    return sum(b"BatchGetItem" in r for r in proxy.forwarded)


@pytest.mark.slow
def test_proxies_end_to_end(dynalite: str, tmp_path: Path,
                            monkeypatch: pytest.MonkeyPatch) -> None:
    from featql.online.base import Cell, version
    from featql.online.dynamodb import DynamoStore

    proxy, ws = Proxy(), "px" + uuid.uuid4().hex[:8]
    payload = b'[1,null,["\xc3\xa9"]]'
    base = DynamoStore(ws, endpoint_url=dynalite, table_prefix="featql_test_")
    base.write([Cell("user#[\"é\"]", "v", version(1, None, payload), payload)])
    want = {"user#[\"é\"]": {"v": payload}}
    try:
        # HTTP_PROXY from the environment: botocore sends through it, so reads go through boto3
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        s = DynamoStore(ws, endpoint_url=dynalite, table_prefix="featql_test_", create=False)
        assert s.read_path == f"boto3 (through the proxy {proxy.url})" and not s.fast_reads
        assert s.read(["user#[\"é\"]"], ["v"]) == want
        assert _batch_gets(proxy) == 1
        # NO_PROXY exempts the endpoint, for botocore and so for the lean reader
        monkeypatch.setenv("NO_PROXY", "127.0.0.1")
        lean = DynamoStore(ws, endpoint_url=dynalite, table_prefix="featql_test_",
                           create=False)
        assert lean.read_path == "lean" and lean.read(["user#[\"é\"]"], ["v"]) == want
        assert _batch_gets(proxy) == 1
        # Config(proxies=...) wins over the environment, as in botocore
        configured = DynamoStore(ws, endpoint_url=dynalite, table_prefix="featql_test_",
                                 create=False, proxies={"http": proxy.url})
        assert configured.read(["user#[\"é\"]"], ["v"]) == want
        assert _batch_gets(proxy) == 2
    finally:
        base.drop()
        proxy.server.close()


@pytest.mark.slow
def test_https_through_a_connect_proxy(dynalite: str, tmp_path: Path,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from featql.online.base import Cell, version
    from featql.online.dynamodb import DynamoStore

    ca, cert, key = make_ca_and_server_cert(tmp_path)
    tls, proxy = TlsForwarder(cert, key, _port(dynalite)), Proxy()
    url, ws = f"https://127.0.0.1:{tls.port}", "cp" + uuid.uuid4().hex[:8]
    try:
        monkeypatch.setenv("AWS_CA_BUNDLE", str(ca))
        monkeypatch.setenv("HTTPS_PROXY", proxy.url)
        s = DynamoStore(ws, endpoint_url=url, table_prefix="featql_test_")
        assert s.read_path.startswith("boto3 (through the proxy")
        s.write([Cell("user#[1]", "v", version(1, None, b"[1,null,[1]]"), b"[1,null,[1]]")])
        tunnels = proxy.tunnels
        assert s.read(["user#[1]"], ["v"]) == {"user#[1]": {"v": b"[1,null,[1]]"}}
        assert proxy.tunnels == tunnels + 1  # the read client's own tunnel
        s.drop()
    finally:
        tls.close()
        proxy.server.close()


# -- credentials that cannot be refreshed -------------------------------------------------------
def failing_session(broken: dict[str, bool]) -> Any:
    """A botocore session whose credentials are within botocore's mandatory-refresh window
    (every use refreshes them) and whose refresh fails while `broken["now"]`."""
    import botocore.session
    from botocore.credentials import CredentialProvider, RefreshableCredentials

    def refresh() -> dict[str, str]:
        if broken["now"]:
            raise RuntimeError("the SSO token expired; run `aws sso login`")
        soon = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=5)
        return {"access_key": "a", "secret_key": "b", "token": "c",
                "expiry_time": soon.strftime("%Y-%m-%dT%H:%M:%SZ")}

    class Expired(CredentialProvider):
        METHOD = "featql-test"

        def load(self) -> Any:
            return RefreshableCredentials.create_from_metadata(
                {"access_key": "a", "secret_key": "b", "token": "c",
                 "expiry_time": "2000-01-01T00:00:00Z"}, refresh, "featql-test")

    session = botocore.session.get_session()
    session.get_component("credential_provider").insert_before("env", Expired())
    return session


@pytest.mark.parametrize("fast", [True, False], ids=["lean", "boto3"])
def test_credentials_that_cannot_refresh_are_a_store_error(dynalite: str, fast: bool) -> None:
    from featql.online.dynamodb import DynamoStore

    s = DynamoStore("cr" + uuid.uuid4().hex[:8], endpoint_url=dynalite, create=False,
                    session=failing_session({"now": True}), fast_reads=fast)
    with pytest.raises(OnlineStoreError, match="sso login"):
        s.read(["user#[1]"], ["v"])


@pytest.mark.slow
def test_credentials_that_cannot_refresh_answer_503_json(dynalite: str, serve_project: Path,
                                                         tmp_path: Path) -> None:
    from featql.compiler.project import compile_project
    from featql.online.dynamodb import DynamoStore
    from featql.server.app import ServeSettings, create_app

    m = compile_project(serve_project).manifest
    assert m is not None
    broken = {"now": False}
    store = DynamoStore("cr" + uuid.uuid4().hex[:8], endpoint_url=dynalite,
                        session=failing_session(broken))
    settings = ServeSettings(serve_project, "dev", tmp_path / "manifest.json", tmp_path)
    app = create_app(settings, m, store)  # reads the store's state: the credentials work
    broken["now"] = True  # ... and then their refresh fails
    got = app.test_client().post("/v1/features/fraud_detection", json={
        "entities": [{"user_id": 1, "merchant_id": 1}], "request": [{"amount": 1.0}]})
    assert got.status_code == 503 and got.headers["Content-Type"].startswith(
        "application/json")
    error = orjson.loads(got.data)["error"]
    assert error["code"] == "store_unavailable" and "could not be refreshed" in error["message"]
    assert "sso login" in error["message"]
    broken["now"] = False
    store.drop()


# -- retries stop at the read deadline -----------------------------------------------------------
class Throttler:
    """A 127.0.0.1 server answering every BatchGetItem with throttling (an error, or a 200 that
    leaves every key unprocessed), kept alive; counts the requests."""

    def __init__(self, unprocessed: bool):
        self.unprocessed = unprocessed
        self.server = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.server.getsockname()[1]}"
        self.requests = 0
        self.arrivals: list[float] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            threading.Thread(target=self._client, args=(conn,), daemon=True).start()

    def _client(self, conn: socket.socket) -> None:
        with conn:
            while True:
                try:
                    head, body = read_request(conn)
                except OSError:
                    return
                if head is None:
                    return
                self.requests += 1
                self.arrivals.append(time.monotonic())
                if self.unprocessed:
                    items = orjson.loads(body)["RequestItems"]
                    status = b"200 OK"
                    answer = orjson.dumps({"Responses": {t: [] for t in items},
                                           "UnprocessedKeys": items})
                else:
                    status = b"400 Bad Request"
                    answer = orjson.dumps({
                        "__type": "com.amazonaws.dynamodb.v20120810#"
                                  "ProvisionedThroughputExceededException",
                        "message": "The level of configured provisioned throughput for the "
                                   "table was exceeded."})
                conn.sendall(b"HTTP/1.1 %s\r\nContent-Type: application/x-amz-json-1.0\r\n"
                             b"Content-Length: %d\r\n\r\n%s" % (status, len(answer), answer))


@pytest.mark.parametrize("unprocessed", [False, True], ids=["exception", "unprocessed-keys"])
@pytest.mark.parametrize("fast", [True, False], ids=["lean", "boto3"])
def test_throttled_reads_stop_at_the_deadline(fast: bool, unprocessed: bool) -> None:
    from featql.online.dynamodb import DynamoStore

    server = Throttler(unprocessed)
    want = "keys unprocessed" if unprocessed else "ProvisionedThroughputExceeded"
    keys = [f"user#[{i}]" for i in range(3)]
    try:
        for deadline_ms in (200, 60):
            s = DynamoStore("thr", endpoint_url=server.url, create=False, fast_reads=fast,
                            read_deadline_ms=deadline_ms)
            assert s.fast_reads is fast
            with pytest.raises(OnlineStoreError, match=want):
                s.read(keys, ["v"])  # warm: a new client's first call is slow on a busy box
            before, started = len(server.arrivals), time.monotonic()
            with pytest.raises(OnlineStoreError, match=f"{want}.*{deadline_ms} ms"):
                s.read(keys, ["v"])
            took = time.monotonic() - started
            arrivals = [t - started for t in server.arrivals[before:]]
            assert len(arrivals) >= 3, arrivals  # it did retry, with backoff in between
            # every retry was sent before the deadline (plus the time a request takes to
            # arrive), and the read ended one attempt after it at most: not 12 attempts
            # over 3.2 s as before
            assert max(arrivals) < deadline_ms / 1000 + 0.05, arrivals
            assert took < deadline_ms / 1000 + 0.5, took
    finally:
        server.server.close()


def test_read_deadline_is_configured_in_featql_toml(tmp_path: Path) -> None:
    from featql.core.config import load_config
    from featql.core.diagnostics import Diagnostics
    from featql.online.dynamodb import DEFAULT_READ_DEADLINE_MS, DynamoStore
    from featql.online.stores import open_store

    def config(extra: str) -> Any:
        (tmp_path / "featql.toml").write_text(
            '[online]\nstore = "dynamodb"\nendpoint_url = "http://127.0.0.1:9"\n' + extra)
        diags = Diagnostics()
        return load_config(tmp_path, "featql.toml", diags), diags

    cfg, diags = config("read_deadline_ms = 75\n")
    assert not diags.has_errors()
    store = open_store(cfg, tmp_path, "dev", create=False)
    assert isinstance(store, DynamoStore) and store.read_deadline_ms == 75
    cfg, diags = config("")
    store = open_store(cfg, tmp_path, "dev", create=False)
    assert isinstance(store, DynamoStore) and store.read_deadline_ms == DEFAULT_READ_DEADLINE_MS
    cfg, diags = config("read_deadline_ms = -5\n")
    assert diags.has_errors() and "read_deadline_ms must be a number of milliseconds" in str(
        [d.message for d in diags.items])
