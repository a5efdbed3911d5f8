"""Does a row-level view hold several rows with the same (keys, event time)?

Only then must a training set break ties (PRODUCT §3), which costs a partitioned window over all
of the view's rows. The answer is computed with one aggregate over (keys, ts) and cached in
`<project>/.featql/cache/ties.json` under the view's fingerprint and the identity (path, size,
mtime, inode; the bytes of small files) of every local file its sources read; S3 sources are
checked each time.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from featql.compiler.ir import FeatureView, Manifest
from featql.runtime.engine import Engine
from featql.runtime.pit import relation_name
from featql.runtime.sources import is_s3, local_files

CACHE = Path(".featql") / "cache" / "ties.json"


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


def has_ties(engine: Engine, manifest: Manifest, view: FeatureView, root: Path) -> bool:
    """True when the view's registered rows relation has a repeated (keys, ts)."""
    sig = _signature(manifest, view, root)
    path = root / CACHE
    cache: dict[str, bool] = {}
    if sig is not None and path.exists():
        try:
            cache = json.loads(path.read_text())
        except (OSError, ValueError):
            cache = {}
        if sig in cache:
            return bool(cache[sig])
    q = (lambda c: f'"{c}"') if engine.name == "duckdb" else (lambda c: f"`{c}`")
    cols = ", ".join(q(c) for c in [*(k.name for k in view.keys), view.timestamp])
    found = engine.query(
        f"SELECT count(*) AS n FROM (SELECT 1 AS one FROM {q(relation_name(view.name, 'row'))} "
        f"GROUP BY {cols} HAVING count(*) > 1) x").column(0)[0].as_py() > 0
    if sig is not None:
        cache[sig] = found
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".tmp{os.getpid()}")
            tmp.write_text(json.dumps(cache, sort_keys=True))
            os.replace(tmp, path)
        except OSError:
            pass
    return found
