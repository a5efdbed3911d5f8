-- @feature_view(name = pair_profile, entity = pair, timestamp = updated_at, ttl = '3h',
--               schedule = '1d', start = '2024-01-01')
SELECT user_id, merchant, updated_at, score FROM profiles
