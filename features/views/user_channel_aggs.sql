-- @feature_view(name = user_channel_aggs, entity = user, timestamp = event_ts,
--               windows = ['1d', '7d'], slide = '1d', start = '2024-01-01')
-- @owner('risk-team')  @tags(['velocity', 'channel'])
-- @description('Channel mix and refund activity per user (zero-amount card checks excluded)')
SELECT user_id,
       SUM(CASE WHEN channel = 'online' THEN 1 ELSE 0 END)   AS online_txn_count,
       SUM(CASE WHEN channel = 'pos' THEN 1 ELSE 0 END)      AS pos_txn_count,
       SUM(CASE WHEN amount < 0 THEN 1 ELSE 0 END)           AS refund_count,
       SUM(CASE WHEN category IS NULL THEN 1 ELSE 0 END)     AS uncategorized_count,
       MIN(amount)                                           AS amount_min
FROM transactions
WHERE amount <> 0
GROUP BY user_id
