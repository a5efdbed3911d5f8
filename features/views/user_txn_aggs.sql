-- @feature_view(name = user_txn_aggs, entity = user, timestamp = event_ts,
--               windows = ['1h', '1d', '7d', '30d'], slide = '1h', start = '2024-01-01')
-- @owner('risk-team')  @tags(['velocity'])
-- @description('Spend velocity per user over sliding windows (purchases only, refunds excluded)')
SELECT user_id,
       COUNT(*)    AS txn_count,
       SUM(amount) AS amount_sum,
       AVG(amount) AS amount_avg,
       MAX(amount) AS amount_max
FROM transactions
WHERE amount > 0
GROUP BY user_id
