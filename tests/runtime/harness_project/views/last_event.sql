-- @feature_view(name = last_event, entity = user, timestamp = ts, ttl = '2h',
--               schedule = '1d', start = '2024-01-01')
SELECT user_id, ts, x, s FROM events
