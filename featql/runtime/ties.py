"""Does a row-level view hold several rows with the same (keys, event time)?

Only then must a training set break ties (PRODUCT §3), which on DuckDB costs a partitioned
window over all of the view's rows. DuckDB finds out cheaply instead of asking up front: it
joins without deduplication, checks only the rows the spine got for twins
(`DuckDBEngine.point_in_time`), and runs the deduplicating join only when one has a twin. Such
a find is recorded in `<project>/.featql/cache/ties.json`, so later training sets deduplicate
straight away, under the view's fingerprint and the identity (path, size, mtime, inode; the
bytes of small files) of every local file its sources read; S3 sources are checked each time.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from featql.compiler.ir import FeatureView, Manifest
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


def _read_cache(root: Path) -> dict[str, bool]:
    path = root / CACHE
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def known_ties(manifest: Manifest, view: FeatureView, root: Path) -> bool | None:
    """The cached answer for the view's current definition and files, or None."""
    sig = _signature(manifest, view, root)
    answer = _read_cache(root).get(sig) if sig is not None else None
    return None if answer is None else bool(answer)


def record_ties(manifest: Manifest, view: FeatureView, root: Path, found: bool) -> None:
    sig = _signature(manifest, view, root)
    if sig is None:
        return
    cache = _read_cache(root)
    cache[sig] = found
    path = root / CACHE
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(json.dumps(cache, sort_keys=True))
        os.replace(tmp, path)
    except OSError:
        pass
