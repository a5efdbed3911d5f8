-- @source(name = transactions, timestamp = event_ts, created = created_ts,
--         batch = parquet('data/transactions/'))
-- @owner('payments-platform')
-- @description('Card and wallet payments, one row per authorization; refunds are non-positive')
-- @pii([ip_address])
CREATE TABLE transactions (
  txn_id      BIGINT,
  user_id     BIGINT,
  merchant_id BIGINT,
  amount      DOUBLE,
  currency    STRING,
  category    STRING,
  channel     STRING,
  ip_address  STRING,
  is_fraud    BOOLEAN,
  event_ts    TIMESTAMP,
  created_ts  TIMESTAMP
);
