"""Python request transform for the fraud_detection service."""

from __future__ import annotations

import math

from featql import request_transform


@request_transform(
    request={"amount": "DOUBLE"},
    inputs=["user_txn_aggs.amount_avg_30d", "user_profile.credit_limit"],
    outputs={"amount_log_ratio": "DOUBLE", "credit_utilization": "DOUBLE"},
)
def amount_features(
    amount: float | None, amount_avg_30d: float | None, credit_limit: float | None
) -> dict[str, float | None]:
    """Log ratio of the amount to the user's 30-day average, and share of the credit limit used.

    Each output is None when an input it needs is None or when it would divide by zero
    (or take the log of a non-positive number).
    """
    log_ratio: float | None = None
    if amount is not None and amount_avg_30d is not None and amount_avg_30d != 0:
        ratio = amount / amount_avg_30d
        log_ratio = math.log(ratio) if ratio > 0 else None
    utilization: float | None = None
    if amount is not None and credit_limit is not None and credit_limit != 0:
        utilization = amount / credit_limit
    return {"amount_log_ratio": log_ratio, "credit_utilization": utilization}
