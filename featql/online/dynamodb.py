"""DynamoDB online store: one table per workspace, one item per entity, one attribute pair per view.

Layout (why): a feature-service request names entities of one or a few entity types and reads
several views of each. Items are keyed `item = "<entity>#<keys as JSON>"` and hold, per view,
`d:<view>` (payload) and `v:<view>` (version, string), plus `t:<view>` for aggregate views. So
a request for N entities of one type is N keys, whatever the number of views: 100 entities fit
one BatchGetItem (the 100-key limit), with a ProjectionExpression fetching only the service's
`d:` attributes. A service spanning two entity types needs up to 2N distinct keys; those chunks
of <= 100 are sent concurrently, so the latency stays one round trip. Throttling, retryable
errors and `UnprocessedKeys` are retried with jittered exponential backoff within a
per-request read deadline (`[online] read_deadline_ms`, 200 ms by default), then reported as
an OnlineStoreError (a 503 at the server), never as missing keys. Reads go through the lean
signed-HTTP reader of `dynamo_http` (same botocore signer, credentials, CA bundle and verify
setting), or through boto3 when a proxy applies to the endpoint or a client was given.

Payload bytes are what a 100-entity read costs on both ends (the store parses, sizes and
checksums them; we parse them), so `d:` holds as little as a lookup needs: JSON payloads (row
values) as strings, no base64; an aggregate cell carrying values merged at load is split into
its head (those values, JSON text) in `d:` and its tiles in `t:`. A lookup in the slide right
after the load reads the head alone; a lookup in another slide reads `t:` (see `read(full=)`).
Items written by earlier versions (every payload whole and binary in `d:`) read as before.

Writes are conditional UpdateItem calls (BatchWriteItem cannot carry a condition), one per
(item, view) with `attribute_not_exists(v) OR v < :v`, fanned out over a thread pool: each cell
(`d:`, `t:` and `v:` set together) is last-writer-wins on its own, so views of one entity
loaded by different jobs never conflict. Payloads avoid DynamoDB numbers (38 digits, no NaN or
1e308): JSON text or binary.
"""

from __future__ import annotations

import binascii
import contextlib
import os
import random
import re
import threading
import time
from collections.abc import Collection, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urlsplit

from featql.online.base import STATE_PREFIX, Cell, OnlineStoreError, WriteReport

MAX_BATCH_GET = 100
DEFAULT_READ_DEADLINE_MS = 200
_BACKOFF_S = 0.004
_BACKOFF_CAP_S = 0.1


def table_name(prefix: str, workspace: str) -> str:
    """`<prefix><workspace>` when the workspace name is a valid table-name tail as it is
    (`[A-Za-z0-9][A-Za-z0-9_.-]*`, 3+ characters with the prefix: existing tables keep their
    names), else `<prefix>_<sanitised>_<hash of the exact name>`, so that two workspaces never
    share a table. The two forms cannot meet (only the second has `_` right after the prefix)."""
    name = prefix + workspace
    if re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", workspace) and len(name) >= 3:
        return name
    import hashlib

    digest = hashlib.sha256(workspace.encode()).hexdigest()[:10]
    return f"{prefix}_{re.sub(r'[^A-Za-z0-9_.-]', '_', workspace)}_{digest}"


def make_session(endpoint_url: str | None) -> Any:
    """A botocore session; a local DynamoDB-compatible endpoint (dynalite, DynamoDB Local)
    accepts any key, so one is set when nothing else provides credentials."""
    import botocore.session

    session = botocore.session.get_session()
    if endpoint_url and session.get_credentials() is None:
        session.set_credentials("featql", "featql")
    return session


def make_client(session: Any, region: str | None, endpoint_url: str | None, *, pool: int = 64,
                attempts: int = 5, verify: bool | str | None = None,
                proxies: dict[str, str] | None = None) -> Any:
    """A DynamoDB client of `session`. `attempts`: botocore's own tries per call, the first
    included (1 for the read client: the store retries reads itself, within the read
    deadline)."""
    import boto3
    from botocore.config import Config

    config = Config(max_pool_connections=pool,
                    retries={"mode": "standard", "total_max_attempts": attempts},
                    connect_timeout=2, read_timeout=10, tcp_keepalive=True, proxies=proxies)
    return boto3.session.Session(botocore_session=session).client(
        "dynamodb", region_name=region or "us-east-1", endpoint_url=endpoint_url or None,
        config=config, verify=verify)


def effective_verify(session: Any, verify: bool | str | None) -> bool | str:
    """The TLS verification botocore applies to a client created with `verify`: that value,
    else the session's `ca_bundle` (AWS_CA_BUNDLE or the config file), else
    REQUESTS_CA_BUNDLE, else True (botocore's default bundle)."""
    if verify is None:
        verify = session.get_config_variable("ca_bundle")
    if verify is None:
        verify = os.environ.get("REQUESTS_CA_BUNDLE", True)
    return verify


def proxy_for(endpoint_url: str, proxies: dict[str, str] | None) -> str | None:
    """The proxy botocore sends requests to `endpoint_url` through, if any: `proxies` of the
    client's Config when given, else HTTP(S)_PROXY from the environment unless NO_PROXY
    exempts the host."""
    from botocore.utils import get_environ_proxies

    scheme = urlsplit(endpoint_url).scheme
    chosen = proxies if proxies is not None else get_environ_proxies(endpoint_url)
    return chosen.get(scheme) or None


def stored_values(payload: bytes) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """A cell's payload as DynamoDB values: (`d:` value, `t:` value or None to remove it).

    An aggregate cell carrying values merged at load is split: `d:` holds the head (the values,
    JSON text) and `t:` the tiles, so a lookup in the slide after the load reads a few dozen
    bytes per cell instead of every tile. JSON payloads (row values, heads) are stored as
    strings: no base64 on the wire, and DynamoDB's size accounting need not decode them.
    """
    from featql.online.tiles import split_merged

    split = split_merged(payload)
    if split is not None:
        return {"S": split[0].decode()}, {"B": split[1]}
    if payload[:1] == b"[":
        with contextlib.suppress(UnicodeDecodeError):
            return {"S": payload.decode()}, None
    return {"B": payload}, None


class DynamoStore:
    kind = "dynamodb"

    def __init__(self, workspace: str, *, region: str | None = None,
                 endpoint_url: str | None = None, table_prefix: str = "featql_",
                 create: bool = True, client: Any = None, writers: int = 16,
                 fast_reads: bool = True, read_deadline_ms: float = DEFAULT_READ_DEADLINE_MS,
                 verify: bool | str | None = None, proxies: dict[str, str] | None = None,
                 session: Any = None):
        """`verify` and `proxies` mean what they mean to botocore (`client(verify=)`,
        `Config(proxies=)`); `session`: a botocore session (its credentials and config) to
        use instead of a new one. A `client` given here serves every call, reads too."""
        self.table = table_name(table_prefix, workspace)
        self.read_deadline_ms = float(read_deadline_ms)
        self._writers = writers
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()
        self._reader: Any = None
        self._read_client: Any = client
        self._lean: tuple[str, str, Any, bool | str] | None = None
        if client is not None:
            self.client = client
            self.read_path = "boto3 (a client was given)"
        else:
            self._session = make_session(endpoint_url) if session is None else session
            self._client_args = (region, endpoint_url, verify, proxies)
            self.client = make_client(self._session, region, endpoint_url, verify=verify,
                                      proxies=proxies)
            url = self.client.meta.endpoint_url
            proxy = proxy_for(url, proxies)
            if proxy is not None:  # botocore speaks proxies; the lean reader does not
                self.read_path = f"boto3 (through the proxy {proxy})"
            else:
                self._lean = (url, self.client.meta.region_name, self._session,
                              effective_verify(self._session, verify))
                self.read_path = "lean"
        self.fast_reads = fast_reads and self._lean is not None
        if create:
            self._ensure_table()

    def _fast_reader(self) -> Any:
        if self._reader is None:
            from featql.online.dynamo_http import BatchGetClient, CredentialsError

            if self._lean is None:
                raise OnlineStoreError(f"DynamoDB: no lean reader here: reads go through "
                                       f"{self.read_path}")
            url, region, session, verify = self._lean
            try:
                credentials = session.get_credentials()
            except Exception as e:  # a credential provider that failed to load
                raise CredentialsError(f"DynamoDB: the AWS credentials could not be loaded: "
                                       f"{type(e).__name__}: {e}") from e
            self._reader = BatchGetClient(url, region, credentials, verify=verify)
        return self._reader

    def _boto3_reads(self) -> Any:
        """The client reads go through when they do not go through the lean reader: the same
        session and settings with botocore's own retries off (the read deadline governs)."""
        with self._pool_lock:
            if self._read_client is None:
                region, endpoint_url, verify, proxies = self._client_args
                self._read_client = make_client(self._session, region, endpoint_url,
                                                attempts=1, verify=verify, proxies=proxies)
            return self._read_client

    def _batch_get_call(self, request: dict[str, Any]) -> dict[str, Any]:
        """One BatchGetItem: the lean signed-HTTP client, or boto3 (`fast_reads=False`)."""
        if not self.fast_reads:
            resp: dict[str, Any] = self._boto3_reads().batch_get_item(RequestItems=request)
            return resp
        got = self._fast_reader().batch_get_all([request])[0]
        if isinstance(got, Exception):
            raise got
        return got

    # -- setup -------------------------------------------------------------------------------
    def _ensure_table(self) -> None:
        c = self.client
        try:
            status = c.describe_table(TableName=self.table)["Table"]["TableStatus"]
        except c.exceptions.ResourceNotFoundException:
            with contextlib.suppress(c.exceptions.ResourceInUseException):
                c.create_table(
                    TableName=self.table, BillingMode="PAY_PER_REQUEST",
                    KeySchema=[{"AttributeName": "item", "KeyType": "HASH"}],
                    AttributeDefinitions=[{"AttributeName": "item", "AttributeType": "S"}])
            status = "CREATING"
        except Exception as e:  # endpoint down, bad credentials...
            raise OnlineStoreError(f"DynamoDB table {self.table}: {e}") from e
        deadline = time.monotonic() + 120
        while status != "ACTIVE":
            if time.monotonic() > deadline:
                raise OnlineStoreError(f"DynamoDB table {self.table} did not become ACTIVE")
            time.sleep(0.1)
            status = c.describe_table(TableName=self.table)["Table"]["TableStatus"]

    def _executor(self) -> ThreadPoolExecutor:
        with self._pool_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self._writers, thread_name_prefix="featql-ddb")
            return self._pool

    # -- writes ------------------------------------------------------------------------------
    def _conditional_update(self, cells: list[Cell]) -> bool:
        """One UpdateItem setting every cell of one item (`d:`, `v:`, and `t:` or its removal),
        on the condition that each cell is newer than the stored one; False when it is not."""
        names: dict[str, str] = {}
        values: dict[str, Any] = {}
        sets, conds, removes = [], [], []
        for i, cell in enumerate(cells):
            names[f"#d{i}"], names[f"#v{i}"] = "d:" + cell.view, "v:" + cell.view
            names[f"#t{i}"] = "t:" + cell.view
            d, t = stored_values(cell.payload)
            values[f":d{i}"], values[f":v{i}"] = d, {"S": cell.version}
            sets.append(f"#d{i} = :d{i}, #v{i} = :v{i}")
            if t is None:
                removes.append(f"#t{i}")
            else:
                values[f":t{i}"] = t
                sets.append(f"#t{i} = :t{i}")
            conds.append(f"(attribute_not_exists(#v{i}) OR #v{i} < :v{i})")
        update = "SET " + ", ".join(sets) + (" REMOVE " + ", ".join(removes) if removes else "")
        c = self.client
        try:
            c.update_item(TableName=self.table, Key={"item": {"S": cells[0].item}},
                          UpdateExpression=update, ConditionExpression=" AND ".join(conds),
                          ExpressionAttributeNames=names, ExpressionAttributeValues=values)
        except c.exceptions.ConditionalCheckFailedException:
            return False
        return True

    def _put_item(self, cells: list[Cell]) -> list[tuple[str, bool]]:
        """All cells of one item in one UpdateItem whose condition is every cell's condition;
        when any cell is not newer, fall back to one conditional write per cell."""
        if len(cells) == 1:
            return [(cells[0].view, self._conditional_update(cells))]
        if self._conditional_update(cells):
            return [(cell.view, True) for cell in cells]
        return [(cell.view, self._conditional_update([cell])) for cell in cells]

    def write(self, cells: Iterable[Cell]) -> WriteReport:
        per_item: dict[str, dict[str, Cell]] = {}
        dropped: list[str] = []
        for cell in cells:
            mine = per_item.setdefault(cell.item, {})
            prev = mine.get(cell.view)
            if prev is not None:  # the same cell twice in one call: only the newer can win
                loser = cell if cell.version <= prev.version else prev
                mine[cell.view] = prev if loser is cell else cell
                dropped.append(loser.view)
                continue
            mine[cell.view] = cell
        pool = self._executor()
        outcomes: list[tuple[str, bool]] = [(v, False) for v in dropped]
        try:
            futures = [pool.submit(self._put_item, list(m.values())) for m in per_item.values()]
            for f in futures:
                outcomes.extend(f.result())
        except OnlineStoreError:
            raise
        except Exception as e:
            raise OnlineStoreError(f"DynamoDB write to {self.table} failed: {e}") from e
        return WriteReport.of(outcomes)

    # -- reads -------------------------------------------------------------------------------
    def read(self, items: Sequence[str], views: Sequence[str],
             full: Collection[str] = ()) -> dict[str, dict[str, bytes]]:
        uniq = list(dict.fromkeys(items))
        if not uniq or not views:
            return {}
        names = {"#k": "item"}
        for i, v in enumerate(views):
            names[f"#d{i}"] = "d:" + v
            if v in full:
                names[f"#t{i}"] = "t:" + v
        projection = ", ".join(names)
        requests = [{self.table: {
            "Keys": [{"item": {"S": k}} for k in uniq[i:i + MAX_BATCH_GET]],
            "ProjectionExpression": projection, "ExpressionAttributeNames": names}}
            for i in range(0, len(uniq), MAX_BATCH_GET)]
        # the reader (or the read client) first: building it is not the read's time
        reader = self._fast_reader() if self.fast_reads else self._boto3_reads()
        deadline = time.monotonic() + self.read_deadline_ms / 1000
        if self.fast_reads:  # all chunks in flight at once: one round trip of latency
            firsts: list[Any] = reader.batch_get_all(requests)
            found = [self._batch_get(r, deadline, first)
                     for r, first in zip(requests, firsts, strict=True)]
        elif len(requests) == 1:
            found = [self._batch_get(requests[0], deadline)]
        else:  # concurrent: still one round trip of latency
            found = list(self._executor().map(lambda r: self._batch_get(r, deadline),
                                              requests))
        out: dict[str, dict[str, bytes]] = {}
        attr_view = {"d:" + v: v for v in views}
        tiles_view = {"t:" + v: v for v in views if v in full}
        a2b = binascii.a2b_base64
        if not tiles_view:  # the common read: an item holds its key and `d:` values only
            for part in found:
                for item in part:
                    key = item.get("item", {}).get("S", "")
                    out[key] = {attr_view.get(attr, attr): (
                        value["S"].encode() if "S" in value
                        else a2b(data) if isinstance(data := value["B"], str) else data)
                        for attr, value in item.items() if attr != "item"}
            return out
        for part in found:
            for item in part:
                cells = {}
                key = ""
                for attr, value in item.items():
                    view = attr_view.get(attr)
                    if view is not None:
                        if view in cells:  # the view's tiles, read first
                            continue
                        data = value.get("S")
                        if data is not None:
                            cells[view] = data.encode()
                        else:
                            data = value["B"]
                            cells[view] = a2b(data) if isinstance(data, str) else data
                    elif attr == "item":
                        key = value["S"]
                    elif tiles_view and attr in tiles_view:
                        data = value["B"]
                        cells[tiles_view[attr]] = a2b(data) if isinstance(data, str) else data
                out[key] = cells
        return out

    def _batch_get(self, request: dict[str, Any], deadline: float,
                   first: Any = None) -> list[dict[str, Any]]:
        """Items of one BatchGetItem, retrying throttling, errors that can be retried and
        UnprocessedKeys with jittered exponential backoff until `deadline` (monotonic time),
        then an OnlineStoreError. `first`: the answer (or exception) of a first attempt made
        by the caller. Binary values may be bytes (boto3) or base64 text (the lean reader)."""
        from botocore.exceptions import ClientError

        from featql.online.dynamo_http import _RETRYABLE, DynamoHttpError

        got: list[dict[str, Any]] = []
        attempt = 0
        while True:
            try:
                if first is None:
                    resp = self._batch_get_call(request)
                else:
                    resp, first = first, None
                    if isinstance(resp, Exception):
                        raise resp
            except (DynamoHttpError, ClientError) as e:
                if isinstance(e, DynamoHttpError):
                    kind, retryable = e.kind, e.retryable
                else:
                    kind = str(e.response.get("Error", {}).get("Code", ""))
                    status = int(e.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))
                    retryable = kind in _RETRYABLE or status >= 500
                if retryable:
                    self._backoff(attempt, deadline, f"DynamoDB answered {kind}")
                    attempt += 1
                    continue
                if kind == "ResourceNotFoundException":
                    raise OnlineStoreError(
                        f"DynamoDB table {self.table} does not exist: run "
                        "`featql materialize --online` for this workspace first") from e
                raise OnlineStoreError(f"DynamoDB read from {self.table} failed: {e}") from e
            except OnlineStoreError:
                raise  # credentials that could not be refreshed, a CA bundle that cannot load
            except Exception as e:  # the endpoint unreachable, credentials missing (boto3) ...
                raise OnlineStoreError(f"DynamoDB read from {self.table} failed: "
                                       f"{type(e).__name__}: {e}") from e
            got.extend(resp.get("Responses", {}).get(self.table, []))
            request = resp.get("UnprocessedKeys") or {}
            if not request:
                return got
            self._backoff(attempt, deadline, f"DynamoDB kept {len(request[self.table]['Keys'])} "
                          "keys unprocessed (throttled)")
            attempt += 1

    def _backoff(self, attempt: int, deadline: float, why: str) -> None:
        """Sleep before retry `attempt + 1` (full jitter: uniform up to 4 ms x 2^attempt,
        capped), or raise when that retry could not start before the deadline."""
        pause = random.uniform(0, min(_BACKOFF_CAP_S, _BACKOFF_S * 2 ** attempt))
        if time.monotonic() + pause >= deadline:
            raise OnlineStoreError(
                f"{why}: gave up after {attempt + 1} attempts at the read deadline of "
                f"{self.read_deadline_ms:g} ms ([online] read_deadline_ms): retry the request")
        time.sleep(pause)

    # -- bookkeeping ---------------------------------------------------------------------------
    def get_state(self, name: str) -> bytes | None:
        c = self.client
        try:
            resp = c.get_item(TableName=self.table, Key={"item": {"S": STATE_PREFIX + name}},
                              ConsistentRead=True)
        except c.exceptions.ResourceNotFoundException:
            return None  # no table yet: nothing was loaded
        except Exception as e:
            raise OnlineStoreError(f"DynamoDB table {self.table}: {e}") from e
        item = resp.get("Item")
        return None if item is None else bytes(item["s"]["B"])

    def put_state(self, name: str, payload: bytes) -> None:
        self.client.put_item(TableName=self.table,
                             Item={"item": {"S": STATE_PREFIX + name}, "s": {"B": payload}})

    def drop(self) -> None:
        with contextlib.suppress(self.client.exceptions.ResourceNotFoundException):
            self.client.delete_table(TableName=self.table)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
