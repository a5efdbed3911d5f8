-- @source(name = merchants, timestamp = updated_at, batch = parquet('data/merchants/'))
-- @owner('merchant-ops')
-- @description('Merchant registry snapshots: one row per change of category code or risk tier')
CREATE TABLE merchants (
  merchant_id   BIGINT,
  updated_at    TIMESTAMP,
  merchant_name STRING,
  mcc           STRING,
  country       STRING,
  risk_tier     INT,
  onboarded_at  TIMESTAMP
);
