"""A `materialize --overwrite` killed half-way: run in a child process, killed with SIGKILL
after it has written a given number of Parquet files."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

_CHILD = textwrap.dedent("""
    import sys, time
    import pyarrow.parquet as pq
    from featql.compiler.project import compile_project
    from featql.jobs.materialize import materialize

    real = pq.write_table
    def slow(*args, **kwargs):
        real(*args, **kwargs)
        print("wrote", flush=True)
        time.sleep(0.2)
    pq.write_table = slow
    c = compile_project(sys.argv[1])
    materialize(sys.argv[1], c.manifest, views=[sys.argv[2]], overwrite=True,
                config=c.config)
""")


def kill_overwrite_after(project: Path, view: str, writes: int,
                         before_kill: Callable[[], None] | None = None) -> None:
    """Overwrite `view` in a child process; kill it (its whole process group) once it has
    written `writes` files, after `before_kill` has looked at the half-done state."""
    proc = subprocess.Popen([sys.executable, "-c", _CHILD, str(project), view],
                            stdout=subprocess.PIPE, text=True, start_new_session=True)
    try:
        assert proc.stdout is not None
        for _ in range(writes):
            assert proc.stdout.readline().startswith("wrote")
        if before_kill is not None:
            before_kill()
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
