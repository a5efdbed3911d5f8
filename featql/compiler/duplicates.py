"""Duplicate features: two views whose features compute the same values.

Each feature's fingerprint covers its canonical SQL (table aliases, formatting, comments and
its own name do not count), its view's keys, time, TTL, windows and filters, and its inputs'
fingerprints; two features with one fingerprint compute the same value for every entity and
time. A renamed copy of a view is then reported once, as a warning (W802) on the copy: the
view defined later (by file path) against the first one with those features. A copy that is
intended says so with `duplicate_of = <view>` in its header. Variants of one view
(`user_profile`, `user_profile:v2`) are versions of each other, not copies.
"""

from __future__ import annotations

from featql.compiler.loader import ParsedFile
from featql.core.diagnostics import Diagnostics, did_you_mean
from featql.core.ir import FeatureView

_SHOWN = 3  # pairs named in a partial-copy message


def warn_duplicates(views: dict[str, FeatureView], files: dict[str, ParsedFile],
                    diags: Diagnostics) -> None:
    first: dict[str, tuple[FeatureView, str]] = {}  # fingerprint -> (view, feature)
    for view in sorted(views.values(), key=lambda v: (v.location.path, v.name)):
        decl = files[view.name].decl
        assert decl is not None  # a view was built from its declaration
        allowed = decl.get("duplicate_of")
        if allowed and allowed not in views:
            diags.error("E307", f"duplicate_of '{allowed}' is not a feature view",
                        decl.at("duplicate_of"), hint=did_you_mean(allowed, views))
        same: dict[str, list[tuple[str, str]]] = {}
        for feat in view.features:
            if not feat.fingerprint:
                continue
            seen = first.get(feat.fingerprint)
            if seen is None:
                first[feat.fingerprint] = (view, feat.name)
                continue
            other, other_feat = seen
            if other.base_name == view.base_name or other.name == allowed:
                continue
            same.setdefault(other.name, []).append((feat.name, other_feat))
        for original, pairs in same.items():
            diags.warning("W802", _message(view, original, pairs), decl.at("name"),
                          hint="remove the copy and serve the original's features, or mark it "
                          f"intended with duplicate_of = {original} in its @feature_view header")


def _message(view: FeatureView, other: str, pairs: list[tuple[str, str]]) -> str:
    if len(pairs) == len(view.features):
        return (f"feature view '{view.name}' duplicates '{other}': its {len(pairs)} "
                f"feature{'s' if len(pairs) != 1 else ''} compute the same values")
    shown = ", ".join(f"{view.name}.{a} = {other}.{b}" for a, b in pairs[:_SHOWN])
    more = f" and {len(pairs) - _SHOWN} more" if len(pairs) > _SHOWN else ""
    return (f"{len(pairs)} of the {len(view.features)} features of '{view.name}' compute the "
            f"same values as features of '{other}': {shown}{more}")

