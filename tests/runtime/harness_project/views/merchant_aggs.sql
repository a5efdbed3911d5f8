-- @feature_view(name = merchant_aggs, entity = merchant, timestamp = ts,
--               windows = ['1h', '3h'], slide = '1h', start = '2024-01-01')
SELECT merchant, COUNT(*) AS n, COUNT(x) AS nx, SUM(x) AS sx, AVG(x) AS ax, MIN(x) AS mn,
       MAX(s) AS ms
FROM events
GROUP BY merchant
