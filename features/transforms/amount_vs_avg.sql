-- @request_transform(name = amount_vs_avg, request = [amount DOUBLE])
-- @owner('risk-team')
-- @description('Requested amount compared with the recent spend of the user')
SELECT request.amount / NULLIF(user_txn_aggs.amount_avg_7d, 0) AS amount_vs_avg_7d,
       request.amount > user_txn_aggs.amount_max_30d          AS exceeds_max_30d
