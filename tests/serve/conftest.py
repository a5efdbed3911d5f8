"""Fixtures for the online half: a real dynalite server, both stores, example projects."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from featql.online.base import OnlineStore

REPO = Path(__file__).resolve().parents[2]
DYNALITE_VERSION = "4.0.0"
DYNALITE_DIR = REPO / ".cache" / "dynalite"
DYNALITE_BIN = DYNALITE_DIR / "node_modules" / ".bin" / "dynalite"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout: float = 30.0, proc: subprocess.Popen[bytes] | None = None,
              ) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before listening")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


def install_dynalite() -> Path:
    """The same command as `make install-dev` (Makefile target `dynalite`)."""
    if not DYNALITE_BIN.exists():
        npm = shutil.which("npm")
        assert npm, "npm is needed to install dynalite (Node 20 + npm)"
        subprocess.run([npm, "install", "--prefix", str(DYNALITE_DIR),
                        f"dynalite@{DYNALITE_VERSION}", "--no-audit", "--no-fund"],
                       check=True, capture_output=True)
    return DYNALITE_BIN


def start_dynalite() -> tuple[subprocess.Popen[bytes], str]:
    binary = install_dynalite()
    port = free_port()
    proc = subprocess.Popen(
        [str(binary), "--host", "127.0.0.1", "--port", str(port), "--createTableMs", "0",
         "--deleteTableMs", "0", "--updateTableMs", "0"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_port(port, proc=proc)
    return proc, f"http://127.0.0.1:{port}"


@pytest.fixture(scope="session")
def dynalite() -> Iterator[str]:
    proc, url = start_dynalite()
    try:
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


def make_store(kind: str, tmp_path: Path, endpoint: str | None) -> OnlineStore:
    workspace = "t" + uuid.uuid4().hex[:10]
    if kind == "sqlite":
        from featql.online.sqlite import SqliteStore

        return SqliteStore(tmp_path / "online.db", workspace)
    from featql.online.dynamodb import DynamoStore

    return DynamoStore(workspace, endpoint_url=endpoint, region="us-east-1",
                       table_prefix="featql_test_")


@pytest.fixture(params=["sqlite", "dynamodb"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[OnlineStore]:
    endpoint = request.getfixturevalue("dynalite") if request.param == "dynamodb" else None
    s = make_store(request.param, tmp_path, endpoint)
    try:
        yield s
    finally:
        s.drop()
        s.close()


@pytest.fixture(scope="session")
def aws_env() -> Iterator[None]:
    """Keep boto3 away from any real credentials or config on the machine."""
    saved = {k: os.environ.get(k) for k in ("AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE")}
    os.environ["AWS_CONFIG_FILE"] = os.devnull
    os.environ["AWS_SHARED_CREDENTIALS_FILE"] = os.devnull
    yield
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture(scope="session")
def serve_project(example_project: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A private copy of the example project (with data): these tests write online stores."""
    root = tmp_path_factory.mktemp("serve") / "features"
    shutil.copytree(example_project, root, ignore=shutil.ignore_patterns(".featql", "target"))
    return root


# a request-transform hook that raises on a negative amount
BOOM = '''
from featql import request_transform


@request_transform(request={"amount": "DOUBLE"}, inputs=["user_profile.credit_limit"],
                   outputs={"ratio": "DOUBLE"})
def boom(amount, credit_limit):
    if amount is not None and amount < 0:
        raise ValueError("negative amount")
    return {"ratio": None if amount is None or not credit_limit else amount / credit_limit}
'''


def copy_with_boom(serve_project: Path, root: Path) -> Path:
    """A copy of the serving example project with the raising `boom` hook added."""
    shutil.copytree(serve_project, root, ignore=shutil.ignore_patterns(".featql", "target"))
    (root / "hooks" / "boom.py").write_text(BOOM)
    return root


def configure_online(root: Path, kind: str, endpoint: str | None, path: str) -> None:
    """Point `[online]` of the project's featql.toml at a store."""
    text = (root / "featql.toml").read_text()
    head, _, tail = text.partition("[online]")
    rest = tail.split("\n[", 1)
    after = ("\n[" + rest[1]) if len(rest) > 1 else ""
    if kind == "sqlite":
        online = f'[online]\nstore = "sqlite"\npath = "{path}"\n'
    else:
        online = (f'[online]\nstore = "dynamodb"\nregion = "us-east-1"\n'
                  f'endpoint_url = "{endpoint}"\ntable_prefix = "{path}"\n')
    (root / "featql.toml").write_text(head + online + after)
