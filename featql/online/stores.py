"""Online stores behind one interface (`OnlineStore`): SQLite (default) and DynamoDB."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from featql.online.base import Cell, OnlineStore, OnlineStoreError, WriteReport, version

if TYPE_CHECKING:
    from featql.core.config import ProjectConfig

__all__ = ["Cell", "OnlineStore", "OnlineStoreError", "WriteReport", "open_store", "version"]

STORES = ("sqlite", "dynamodb")
MISSING_BOTO3 = "the DynamoDB online store needs boto3: pip install 'featql[dynamodb]'"


def open_store(config: ProjectConfig, root: Path, workspace: str, *,
               create: bool = True) -> OnlineStore:
    """The store `[online]` of featql.toml names, for one workspace."""
    kind = config.online_store.lower()
    if kind == "sqlite":
        from featql.online.sqlite import SqliteStore

        path = Path(config.online_path)
        return SqliteStore(path if path.is_absolute() else root / path, workspace)
    if kind == "dynamodb":
        import importlib.util

        if importlib.util.find_spec("boto3") is None:
            raise OnlineStoreError(MISSING_BOTO3)
        from featql.online.dynamodb import DynamoStore

        opts = config.online
        return DynamoStore(workspace, region=opts.get("region"),
                           endpoint_url=opts.get("endpoint_url"),
                           table_prefix=str(opts.get("table_prefix", "featql_")), create=create,
                           read_deadline_ms=float(opts.get("read_deadline_ms", 200)))
    from featql.core.diagnostics import did_you_mean

    hint = did_you_mean(kind, STORES) or f"choose one of {', '.join(STORES)}"
    raise OnlineStoreError(f"unknown online store '{kind}' in [online] store: {hint}")
