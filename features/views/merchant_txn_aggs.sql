-- @feature_view(name = merchant_txn_aggs, entity = merchant, timestamp = event_ts,
--               windows = ['1d', '7d'], slide = '1d', start = '2024-01-01')
-- @owner('merchant-ops')  @tags(['merchant', 'velocity'])
-- @description('Merchant volume and fraud rate (windows end before t: no label leak)')
SELECT merchant_id,
       COUNT(*)    AS txn_count,
       SUM(amount) AS amount_sum,
       AVG(amount) AS amount_avg,
       MAX(amount) AS amount_max,
       AVG(CASE WHEN is_fraud THEN 1.0 ELSE 0.0 END) AS fraud_rate
FROM transactions
GROUP BY merchant_id
