-- @source(name = events, timestamp = ts, created = created_at, batch = parquet('data/events/'))
CREATE TABLE events (
  user_id BIGINT, merchant STRING, x BIGINT, s STRING, ts TIMESTAMP, created_at TIMESTAMP
);
