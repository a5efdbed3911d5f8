"""The corpus of tricky requests against the server `featql serve` does not run by default
(`--server`, here through FEATQL_SERVER): both of the servers it can run must pass it, so that
switching is a setting and not a regression. test_hostile.py runs the whole hostile suite
(slowloris, trickled heads, pipelining) against the default one."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from featql.server.choice import DEFAULT_SERVER, SERVER_ENV, SERVERS

from .conftest import ServerProcess
from .corpus import CASES, Case
from .rawhttp import exchange
from .test_hostile import CASE_TIMEOUT, judge

pytestmark = pytest.mark.slow

OTHER = next(s for s in SERVERS if s != DEFAULT_SERVER)


@pytest.fixture(scope="module")
def other_server(hostile_project: Path, tmp_path_factory: pytest.TempPathFactory
                 ) -> Iterator[ServerProcess]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(SERVER_ENV, OTHER)
        srv = ServerProcess(hostile_project, tmp_path_factory.mktemp("other") / "server.log")
    try:
        log = srv.log_tail()
        assert OTHER in log, f"`featql serve` did not start {OTHER}: {log}"
        yield srv
    finally:
        srv.stop()


@pytest.mark.parametrize("case", [pytest.param(c, id=c.id) for c in CASES])
def test_tricky_request_on_the_other_server(other_server: ServerProcess, case: Case) -> None:
    out = exchange(other_server.port, list(case.segments), want=case.want,
                   timeout=CASE_TIMEOUT, head_only=case.head_only, shut_wr=case.shut_wr,
                   linger=1.0 if case.close_after_2xx else 0.0, pause=case.pause)
    verdict = judge(case, out)
    assert verdict is None, f"{OTHER}: {case.id} ({case.why}): {verdict}; {out.describe()}"
    assert other_server.alive(), other_server.log_tail()
