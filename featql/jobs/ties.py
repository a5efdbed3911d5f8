"""Does a row-level view hold several rows with the same (keys, event time)?

Only then must a training set break ties (PRODUCT §3), which on DuckDB costs a partitioned
window over all of the view's rows. `tie_check` picks the cheaper way to find out:
- a view with not many more rows than the spine: one aggregate over its (keys, ts), whose
  answer is cached;
- a view with many more rows than the spine (where that aggregate would cost a third of the
  join): the first training set joins without deduplication, then checks only the rows the
  spine got for twins (`DuckDBEngine.point_in_time`), and runs the deduplicating join only when
  one has a twin; the next one on the same data runs the aggregate, so that later ones skip
  the question (a first call pays the check on the spine's rows; repeated calls none).
Answers are cached in `<project>/.featql/cache/ties.json` under the view's fingerprint and the
identity (path, size, mtime, inode; the bytes of small files) of every local file its sources
read, so later training sets skip the question; S3 sources are asked each time.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Literal

from featql.core.ir import FeatureView, Manifest
from featql.dialects.pit import relation_name
from featql.engines.engine import Engine
from featql.engines.sources import is_s3, local_files

CACHE = Path(".featql") / "cache" / "ties.json"
VERIFY_ABOVE = 2.0
"""Verify after the join when the view has more than this many rows per spine row."""

VERIFIED = "verified"
"""Cached for a large view joined once with verification and no twin found: the next training
set on the same data runs the aggregate, whose answer lets every later one skip the question."""

TiePlan = Literal["unique", "dedupe", "verify"]


def _signature(manifest: Manifest, view: FeatureView, root: Path) -> str | None:
    h = hashlib.sha256(view.fingerprint.encode())
    todo, seen = list(view.depends_on), set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        upstream = manifest.view(name)
        if upstream is not None:
            todo.extend(upstream.depends_on)
            continue
        source = manifest.source(name)
        if source is None or is_s3(source.batch.path):
            return None
        for f in local_files(source, root):
            st = os.stat(f)
            h.update(f"{f}\0{st.st_size}\0{st.st_mtime_ns}\0{st.st_ino}\n".encode())
            if st.st_size < 1 << 20:  # small files: their bytes, whatever the clock says
                h.update(Path(f).read_bytes())
    return h.hexdigest()


def _read_cache(root: Path) -> dict[str, bool | str]:
    path = root / CACHE
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def record_ties(manifest: Manifest, view: FeatureView, root: Path, found: bool) -> None:
    """Cache an answer for the view's current definition and files."""
    _store(root, _signature(manifest, view, root), found)


def _store(root: Path, sig: str | None, answer: bool | str) -> None:
    if sig is None:
        return
    cache = _read_cache(root)
    cache[sig] = answer
    path = root / CACHE
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(json.dumps(cache, sort_keys=True))
        os.replace(tmp, path)
    except OSError:
        pass


def tie_check(engine: Engine, manifest: Manifest, view: FeatureView, root: Path,
             spine_rows: int) -> TiePlan:
    """How a DuckDB training set treats a row-level view read from its sources."""
    sig = _signature(manifest, view, root)
    known = _read_cache(root).get(sig) if sig is not None else None
    if isinstance(known, bool):
        return "dedupe" if known else "unique"
    relation = '"' + relation_name(view.name, "row") + '"'
    rows = engine.query(f"SELECT count(*) AS n FROM {relation}").column(0)[0].as_py()
    if rows > VERIFY_ABOVE * spine_rows and known != VERIFIED:
        _store(root, sig, VERIFIED)  # a training set after this one settles it
        return "verify"
    cols = ", ".join(f'"{c}"' for c in [*(k.name for k in view.keys), view.timestamp])
    found = engine.query(f"SELECT count(*) AS n FROM (SELECT 1 AS one FROM {relation} "
                         f"GROUP BY {cols} HAVING count(*) > 1) x").column(0)[0].as_py() > 0
    _store(root, sig, found)
    return "dedupe" if found else "unique"
