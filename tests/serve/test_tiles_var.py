"""FQT3 variable-length columns (list / histogram / sketch partials) and the byte-identity of
cells whose partials are all numeric."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from featql.online.tiles import _PackedWindow, decode_tiles, encode_tiles, split_merged, unpack

ROOT = Path(__file__).resolve().parents[2]

entries = st.one_of(st.none(), st.lists(st.tuples(st.integers(-2**62, 2**62),
                                                   st.one_of(st.none(), st.integers(0, 9)),
                                                   st.one_of(st.text(max_size=5),
                                                             st.integers(-9, 9))),
                                         max_size=4))
sketches = st.one_of(st.none(), st.binary(min_size=1, max_size=40))
numbers = st.one_of(st.none(), st.integers(-1000, 1000), st.floats(-1e9, 1e9))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(entries, sketches, numbers, st.integers(0, 5)), max_size=12))
def test_variable_columns_round_trip(rows: list[tuple[Any, Any, Any, int]]) -> None:
    starts = [3600 * i for i in range(len(rows))]
    cols = {"e__entries": [None if r[0] is None else [list(x) for x in r[0]] for r in rows],
            "k__sketch": [r[1] for r in rows], "m__min": [r[2] for r in rows],
            "e__count": [r[3] for r in rows]}
    blob = encode_tiles(starts, cols, merged=(7200, [1, [2, 3]]))
    names = list(cols)
    tiles = decode_tiles(blob, names)
    assert tiles.starts == starts
    # a column with no value at all is stored as numeric NULLs (NaN), which merges the same
    assert _nulls(tiles.columns["e__entries"]) == cols["e__entries"]
    assert _nulls(tiles.columns["k__sketch"]) == cols["k__sketch"]
    assert list(tiles.columns["e__count"]) == cols["e__count"]
    window = _PackedWindow(unpack(blob, names), 0, len(rows))
    assert list(window.present("e__entries")) == [v for v in cols["e__entries"] if v is not None]
    assert list(window.present("k__sketch")) == [v for v in cols["k__sketch"] if v is not None]
    assert list(window.present("m__min")) == [float(v) for v in cols["m__min"] if v is not None]
    split = split_merged(blob)  # the merged values split off leave the tiles readable
    assert split is not None
    assert _nulls(decode_tiles(split[1], names).columns["e__entries"]) == cols["e__entries"]


def _nulls(column: Any) -> list[Any]:
    return [None if isinstance(v, float) and v != v else v for v in column]


_OLD = """
import importlib.util, random, sys
src = sys.argv[1]
spec = importlib.util.spec_from_file_location("old_tiles", src)
old = importlib.util.module_from_spec(spec); sys.modules["old_tiles"] = old
spec.loader.exec_module(old)
from featql.online.tiles import encode_tiles
r = random.Random(7)
for _ in range(500):
    n = r.randint(0, 8)
    starts = sorted(r.sample(range(0, 100 * 3600, 3600), n))
    cols = {"a__count": [r.randint(0, 5) for _ in range(n)],
            "a__sum": [r.choice([None, r.random(), r.randint(-9, 9)]) for _ in range(n)],
            "a__mean": [r.choice([None, r.random()]) for _ in range(n)],
            "m__min": [r.choice([None, r.random() * 100 - 50]) for _ in range(n)]}
    m = (5, [1, 2.5, None]) if r.random() < .5 else None
    assert old.encode_tiles(starts, cols, m) == encode_tiles(starts, cols, m)
print("identical")
"""


def test_numeric_cells_are_byte_identical_to_the_format_before_variable_columns(
        tmp_path: Path) -> None:
    """The encoder of the commit before variable-length columns (from git) and today's write
    the same bytes for numeric partials."""
    old = subprocess.run(["git", "show", "79764c5:featql/online/tiles.py"], cwd=ROOT,
                         capture_output=True, text=True, check=True).stdout
    (tmp_path / "old_tiles.py").write_text(old)
    out = subprocess.run([sys.executable, "-c", _OLD, str(tmp_path / "old_tiles.py")],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "identical"
