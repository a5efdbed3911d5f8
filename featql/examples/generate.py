"""Deterministic synthetic data for the example fraud-detection project (`features/`).

`generate(project_dir)` writes the three batch sources the example declares:

- `data/transactions/part-NNN.parquet`: one file per 10 days of event time, in event-time order;
- `data/users/part-000.parquet`: slowly changing user snapshots (1-4 rows per user);
- `data/merchants/part-000.parquet`: merchant snapshots (1-2 rows per merchant).

The same arguments always give byte-identical files: one seeded numpy `Generator` drawn in a fixed
order, a fixed row order, and Parquet written with fixed options. Nothing reads the wall clock.
Everything is vectorized, so the default million transactions take a few seconds.
"""

from __future__ import annotations

from collections.abc import Callable
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

START = np.datetime64("2024-01-01T00:00:00", "us")
"""Event time of the first generated transaction day (UTC, no zone)."""

_SEC = 1_000_000  # microseconds
_DAY = 86_400 * _SEC
_PART_DAYS = 10

COUNTRIES = ("US", "GB", "DE", "FR", "ES", "IN", "BR", "MX", "CA", "JP", "AU", "NG", "RU")
_COUNTRY_P = (0.33, 0.10, 0.08, 0.07, 0.05, 0.08, 0.06, 0.04, 0.05, 0.04, 0.04, 0.03, 0.03)
_CURRENCY = ("USD", "GBP", "EUR", "EUR", "EUR", "INR", "BRL", "MXN", "CAD", "JPY", "AUD", "NGN",
             "RUB")
_HIGH_RISK_COUNTRIES = ("NG", "RU", "BR")
_EMAIL_DOMAINS = ("gmail.com", "yahoo.com", "outlook.com", "icloud.com", "hotmail.com",
                  "proton.me", "gmx.de", "corp.example.com", "mailinator.com", "tempmail.dev")
_EMAIL_P = (0.40, 0.12, 0.12, 0.10, 0.08, 0.05, 0.04, 0.05, 0.02, 0.02)
_DISPOSABLE_EMAIL = (8, 9)  # indexes into _EMAIL_DOMAINS
# category, merchant category code, median amount (USD), share of merchants, base risk tier
_CATEGORIES = (
    ("grocery", "5411", 45.0, 0.16, 1), ("restaurants", "5812", 30.0, 0.18, 1),
    ("gas", "5541", 40.0, 0.08, 2), ("electronics", "5732", 180.0, 0.07, 3),
    ("travel", "4511", 350.0, 0.05, 3), ("fashion", "5651", 70.0, 0.12, 2),
    ("digital_goods", "5818", 15.0, 0.08, 4), ("gambling", "7995", 60.0, 0.03, 5),
    ("pharmacy", "5912", 25.0, 0.06, 1), ("home", "5200", 90.0, 0.07, 2),
    ("entertainment", "7832", 20.0, 0.07, 2), ("money_transfer", "4829", 200.0, 0.03, 5),
)
_RISKY_CATEGORIES = (3, 6, 7, 11)
_CHANNELS = ("pos", "online", "mobile")
_CARD_NOT_PRESENT = (6, 7, 11)  # categories never paid at a point of sale
# Relative transaction volume per hour of day (UTC): quiet nights, lunch and evening peaks.
_HOURLY = (1.0, 0.6, 0.4, 0.3, 0.3, 0.5, 1.2, 2.5, 4.0, 5.0, 5.5, 6.0,
           6.5, 6.0, 5.5, 5.5, 6.0, 6.5, 7.0, 7.0, 6.0, 4.5, 3.0, 1.8)
_NAME_A = ("Blue", "Golden", "Urban", "North", "Prime", "Silver", "Green", "Royal", "Swift",
           "Lucky")
_NAME_B = ("Harbor", "Market", "Works", "Point", "Hub", "Depot", "House", "Lane", "Corner", "Bay")

_PARQUET_OPTIONS: dict[str, Any] = {
    "compression": "zstd",
    "compression_level": 3,
    "row_group_size": 131_072,
    "use_dictionary": True,
    "write_statistics": True,
    "version": "2.6",
    "data_page_version": "1.0",
}

Progress = Callable[[str], None]


def generate(project_dir: Path, transactions: int = 1_000_000, days: int = 90, seed: int = 7,
             progress: Progress | None = None) -> dict[str, int]:
    """Write the example sources under `project_dir/data/`; return the row count per source."""
    if transactions < 1 or days < 1:
        raise ValueError("transactions and days must be positive")
    say = progress or (lambda _msg: None)
    data = Path(project_dir) / "data"
    rng = np.random.default_rng(seed)
    n_users, n_merchants = max(50, transactions // 50), max(10, transactions // 500)
    end = _us(START) + days * _DAY

    for folder in ("users", "merchants", "transactions"):
        _clear(data / folder)
    users = _users(rng, n_users, days, end)
    _write(users.table, data / "users", "part-000.parquet")
    say(f"users: {users.table.num_rows:,} rows for {n_users:,} users")
    merchants = _merchants(rng, n_merchants, end)
    _write(merchants.table, data / "merchants", "part-000.parquet")
    say(f"merchants: {merchants.table.num_rows:,} rows for {n_merchants:,} merchants")

    txns = _transactions(rng, transactions, days, users, merchants)
    day = (txns.column("event_ts").cast(pa.int64()).to_numpy() - _us(START)) // _DAY
    bounds: list[int] = np.searchsorted(day, [*range(0, days, _PART_DAYS), days]).tolist()
    parts = [txns.slice(lo, hi - lo) for lo, hi in pairwise(bounds)]
    for i, part in enumerate(parts):  # empty parts are written too: a fixed file layout
        _write(part, data / "transactions", f"part-{i:03d}.parquet")
    say(f"transactions: {transactions:,} rows over {days} days in {len(parts)} files")
    return {"transactions": transactions, "users": users.table.num_rows,
            "merchants": merchants.table.num_rows}


def write_spine(project_dir: Path, rows: int = 10_000, seed: int = 11,
                warmup_days: int = 7) -> Path:
    """Sample a training spine for `fraud_detection` from the generated transactions.

    The spine holds purchases (amount > 0) after `warmup_days` of history, in event-time order:
    user_id, merchant_id, amount (request data), event_ts and the label is_fraud. It is written to
    `data/spine.parquet`, whose path is returned.
    """
    data = Path(project_dir) / "data"
    files = sorted((data / "transactions").glob("part-*.parquet"))
    if not files:
        raise FileNotFoundError(f"no transactions under {data / 'transactions'}: run generate()")
    cols = ["user_id", "merchant_id", "amount", "event_ts", "is_fraud"]
    txns = pa.concat_tables(pq.read_table(f, columns=cols) for f in files)
    cutoff = pa.scalar(START + np.timedelta64(warmup_days, "D"), pa.timestamp("us"))
    keep = pc.and_(pc.greater(txns["amount"], 0.0), pc.greater_equal(txns["event_ts"], cutoff))
    eligible = txns.filter(keep)
    take = min(rows, eligible.num_rows)
    idx = np.sort(np.random.default_rng(seed).choice(eligible.num_rows, take, replace=False))
    path = data / "spine.parquet"
    pq.write_table(eligible.take(pa.array(idx)), path, **_PARQUET_OPTIONS)
    return path


class _Users:
    """The users table plus per-user arrays the transaction model needs (index = user_id - 1)."""

    def __init__(self, table: pa.Table, signup_us: np.ndarray, country: np.ndarray,
                 kyc0: np.ndarray, disposable: np.ndarray, weight: np.ndarray) -> None:
        self.table, self.signup_us, self.country = table, signup_us, country
        self.kyc0, self.disposable, self.weight = kyc0, disposable, weight


class _Merchants:
    """The merchants table plus per-merchant arrays (index = merchant_id - 1)."""

    def __init__(self, table: pa.Table, category: np.ndarray, tier0: np.ndarray,
                 weight: np.ndarray) -> None:
        self.table, self.category, self.tier0, self.weight = table, category, tier0, weight


def _users(rng: np.random.Generator, n: int, days: int, end: int) -> _Users:
    start = _us(START)
    # Signups: most long before the data starts, some recent, some during it (new accounts).
    kind = rng.choice(3, n, p=(0.70, 0.18, 0.12) if days >= 2 else (0.8, 0.2, 0.0))
    lo = np.array([start - 3 * 365 * _DAY, start - 90 * _DAY, start])[kind]
    hi = np.array([start - 90 * _DAY, start, start + int(0.8 * (days - 1) * _DAY)])[kind]
    signup = _seconds(lo + (rng.random(n) * (hi - lo)).astype(np.int64))
    versions = rng.choice(np.arange(1, 5), n, p=(0.35, 0.35, 0.20, 0.10))
    versions = np.where(kind == 0, np.maximum(versions, 2), versions)  # old accounts were updated
    owner = np.repeat(np.arange(n), versions)
    first = np.r_[0, np.cumsum(versions)[:-1]]
    is_first = np.zeros(len(owner), dtype=bool)
    is_first[first] = True
    # Later snapshots land in [max(signup, start - 80d), end): recent enough for the 90d TTL.
    lo_upd = np.maximum(signup[owner] + _SEC, start - 80 * _DAY)
    hi_upd = end - 4 * _SEC  # room for the +k seconds below
    upd = _seconds(lo_upd + (rng.random(len(owner)) * (hi_upd - lo_upd)).astype(np.int64))
    upd = np.where(is_first, signup[owner], upd)
    order = np.lexsort((upd, owner))  # sorted by user, then time; first rows stay first
    upd = upd[order] + (np.arange(len(owner)) - first[owner]) * _SEC  # strictly increasing

    country0 = rng.choice(len(COUNTRIES), n, p=_COUNTRY_P)
    moved = ~is_first & (rng.random(len(owner)) < 0.08)
    country = np.where(moved, rng.choice(len(COUNTRIES), len(owner), p=_COUNTRY_P),
                       country0[owner])
    country = country[_ffill(moved | is_first)]
    kyc0 = rng.choice(4, n, p=(0.25, 0.35, 0.30, 0.10))
    step = np.where(is_first, 0, (rng.random(len(owner)) < 0.4).astype(np.int64))
    kyc = np.minimum(3, kyc0[owner] + _group_cumsum(step, first, owner))
    user_factor = rng.lognormal(0.0, 0.6, n)
    limit = np.round(500.0 * (1 + kyc) ** 1.5 * user_factor[owner], -2)
    no_limit = ((kyc == 0) & (rng.random(len(owner)) < 0.6)) | (rng.random(len(owner)) < 0.02)
    email = rng.choice(len(_EMAIL_DOMAINS), n, p=_EMAIL_P)

    table = pa.table({
        "user_id": pa.array(owner + 1, pa.int64()),
        "updated_at": _ts(upd),
        "signup_ts": _ts(signup[owner]),
        "country": _pick(COUNTRIES, country),
        "kyc_level": pa.array(kyc, pa.int32()),
        "email_domain": _pick(_EMAIL_DOMAINS, email[owner]),
        "credit_limit": pa.array(limit, pa.float64(), mask=no_limit),
    })
    weight = rng.lognormal(0.0, 1.1, n)  # heavy-tailed activity: a few users dominate
    return _Users(table, signup, country0, kyc0, np.isin(email, _DISPOSABLE_EMAIL), weight)


def _merchants(rng: np.random.Generator, n: int, end: int) -> _Merchants:
    start = _us(START)
    category = rng.choice(len(_CATEGORIES), n, p=[c[3] for c in _CATEGORIES])
    base_tier = np.array([c[4] for c in _CATEGORIES])[category]
    tier0 = np.clip(base_tier + rng.choice(3, n, p=(0.2, 0.6, 0.2)) - 1, 1, 5)
    onboarded = _seconds(start - 7 * _DAY - (rng.random(n) * 3 * 365 * _DAY).astype(np.int64))
    reviewed = rng.random(n) < 0.65  # a second snapshot: periodic review or re-tiering
    versions = 1 + reviewed.astype(np.int64)
    owner = np.repeat(np.arange(n), versions)
    second = np.r_[False, owner[1:] == owner[:-1]]
    lo = np.maximum(onboarded[owner] + _DAY, start - 300 * _DAY)
    upd = np.where(second, _seconds(lo + (rng.random(len(owner)) * (end - lo)).astype(np.int64)),
                   onboarded[owner])
    tier = np.where(second, np.clip(tier0[owner] + rng.choice(3, len(owner)) - 1, 1, 5),
                    tier0[owner])
    country = rng.choice(len(COUNTRIES), n, p=_COUNTRY_P)
    names = [f"{_NAME_A[a]} {_NAME_B[b]} {_CATEGORIES[c][0].replace('_', ' ').title()} #{i + 1}"
             for i, (a, b, c) in enumerate(zip(rng.integers(0, len(_NAME_A), n),
                                               rng.integers(0, len(_NAME_B), n), category,
                                               strict=True))]
    table = pa.table({
        "merchant_id": pa.array(owner + 1, pa.int64()),
        "updated_at": _ts(upd),
        "merchant_name": pa.array(names, pa.string()).take(pa.array(owner)),
        "mcc": _pick(tuple(c[1] for c in _CATEGORIES), category[owner]),
        "country": _pick(COUNTRIES, country[owner]),
        "risk_tier": pa.array(tier, pa.int32()),
        "onboarded_at": _ts(onboarded[owner]),
    })
    # Zipf-like popularity over a random ranking: a few marketplaces take a large share.
    weight = 1.0 / (1.0 + rng.permutation(n)) ** 0.9
    return _Merchants(table, category, tier0, weight)


def _transactions(rng: np.random.Generator, n: int, days: int, users: _Users,
                  merchants: _Merchants) -> pa.Table:
    start = _us(START)
    user = rng.choice(len(users.weight), n, p=users.weight / users.weight.sum())
    merchant = rng.choice(len(merchants.weight), n, p=merchants.weight / merchants.weight.sum())
    # Event time: a day on or after the signup, then a diurnal hour, second and millisecond.
    first_day = np.maximum(0, (users.signup_us - start) // _DAY + 1)[user]
    day = first_day + (rng.random(n) * (days - first_day)).astype(np.int64)
    hour = rng.choice(24, n, p=np.array(_HOURLY) / sum(_HOURLY))
    ts = (start + day * _DAY + hour * 3600 * _SEC + rng.integers(0, 3600, n) * _SEC
          + rng.integers(0, 1000, n) * 1000)
    delay = rng.integers(0, 120 * _SEC + 1, n)
    # Exact event-time ties for the same user (split payments, retries): ~0.5% of rows copy
    # another row's user and event time; a fifth of them also copy its created time.
    k = max(1, n // 200) if n >= 2 else 0
    picks = rng.permutation(n)[: 2 * k]
    dst, src = picks[:k], picks[k:]
    user[dst], ts[dst] = user[src], ts[src]
    same_merchant = rng.random(k) < 0.5
    merchant[dst] = np.where(same_merchant, merchant[src], merchant[dst])
    delay[dst] = np.where(rng.random(k) < 0.2, delay[src], delay[dst])

    category = merchants.category[merchant]
    median = np.array([c[2] for c in _CATEGORIES])[category]
    amount = median * rng.lognormal(0.0, 0.9, n)
    # Fraud: ~1%, likelier for large amounts, new accounts, night hours, risky categories and
    # merchants, high-risk countries, disposable e-mail and low KYC.
    hour_of_day = (ts - start) % _DAY // (3600 * _SEC)
    score = (1.0 * np.log(amount / median) + 1.6 * (ts - users.signup_us[user] < 30 * _DAY)
             + 1.2 * (hour_of_day < 6) + 0.8 * np.isin(category, _RISKY_CATEGORIES)
             + 0.3 * (merchants.tier0[merchant] - 3) + 1.0 * users.disposable[user]
             + 0.6 * np.isin(users.country[user], [COUNTRIES.index(c) for c in
                                                   _HIGH_RISK_COUNTRIES])
             + 0.5 * (users.kyc0[user] == 0))
    risk = np.exp(score - score.max())
    fraud = rng.random(n) < np.minimum(1.0, 0.01 * risk / risk.mean())
    amount = np.where(fraud, amount * rng.lognormal(0.6, 0.4, n), amount)
    # Refunds (negative) and zero-amount card checks; never labelled fraud.
    kind = rng.random(n)
    amount = np.where(kind < 0.015, -amount, np.where(kind < 0.016, 0.0, amount))
    fraud &= amount > 0
    amount = np.round(amount, 2)

    cum = np.tile(np.cumsum([0.50, 0.30, 0.20]), (len(_CATEGORIES), 1))
    cum[list(_CARD_NOT_PRESENT)] = np.cumsum([0.0, 0.6, 0.4])
    u = np.where(fraud, 0.5 + rng.random(n) * 0.5, rng.random(n))  # fraud is card-not-present
    channel = (u[:, None] > cum[category]).sum(axis=1)
    # IPs: each user has three home addresses; fraud comes from a shared pool; POS has none.
    octets = rng.integers(1, 255, (len(users.weight) * 3 + 256, 4))
    ip_pool = [f"{a}.{b}.{c}.{d}" for a, b, c, d in octets.tolist()]
    ip = np.where(fraud, len(users.weight) * 3 + rng.integers(0, 256, n),
                  user * 3 + rng.choice(3, n, p=(0.7, 0.2, 0.1)))
    currency = np.where(rng.random(n) < 0.97, users.country[user], 0)

    order = np.lexsort((rng.random(n), user, ts))  # event time, then user, then arbitrary
    category, channel, ip = category[order], channel[order], ip[order]
    return pa.table({
        "txn_id": pa.array(np.arange(1, n + 1), pa.int64()),
        "user_id": pa.array(user[order] + 1, pa.int64()),
        "merchant_id": pa.array(merchant[order] + 1, pa.int64()),
        "amount": pa.array(amount[order], pa.float64()),
        "currency": _pick(_CURRENCY, currency[order]),
        "category": _pick(tuple(c[0] for c in _CATEGORIES), category,
                          mask=rng.random(n) < 0.003),
        "channel": _pick(_CHANNELS, channel),
        "ip_address": _pick(tuple(ip_pool), ip, mask=channel == 0),
        "is_fraud": pa.array(fraud[order], pa.bool_()),
        "event_ts": _ts(ts[order]),
        "created_ts": _ts(ts[order] + delay[order]),
    })


def _us(t: np.datetime64) -> int:
    return int(t.astype("datetime64[us]").astype(np.int64))


def _seconds(us: np.ndarray) -> np.ndarray:
    """Truncate microsecond timestamps to whole seconds."""
    return us - us % _SEC


def _ts(us: np.ndarray) -> pa.Array:
    return pa.array(np.asarray(us, dtype=np.int64).view("datetime64[us]"), pa.timestamp("us"))


def _pick(pool: tuple[str, ...], idx: np.ndarray, mask: np.ndarray | None = None) -> pa.Array:
    """Strings `pool[idx]` (NULL where `mask`), without a Python loop over the rows."""
    return pa.array(pool, pa.string()).take(pa.array(idx, pa.int64(), mask=mask))


def _ffill(mark: np.ndarray) -> np.ndarray:
    """For each position, the index of the latest marked position at or before it."""
    return np.maximum.accumulate(np.where(mark, np.arange(len(mark)), 0))


def _group_cumsum(x: np.ndarray, first: np.ndarray, owner: np.ndarray) -> np.ndarray:
    """Cumulative sum of `x` restarting at each group's first row (rows grouped by `owner`)."""
    total = np.cumsum(x)
    return total - (total[first] - x[first])[owner]


def _clear(folder: Path) -> None:
    """Remove part files from an earlier run so a smaller run leaves no stale data behind."""
    for old in folder.glob("part-*.parquet"):
        old.unlink()


def _write(table: pa.Table, folder: Path, name: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, folder / name, **_PARQUET_OPTIONS)
