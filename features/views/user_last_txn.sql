-- @feature_view(name = user_last_txn, entity = user, timestamp = event_ts,
--               ttl = '30d', schedule = '1d', start = '2024-01-01')
-- @owner('risk-team')  @tags(['recency'])
-- @description('Most recent transaction of the user before the one being scored')
SELECT user_id,
       event_ts,
       amount      AS last_amount,
       category    AS last_category,
       merchant_id AS last_merchant_id,
       channel     AS last_channel
FROM transactions
