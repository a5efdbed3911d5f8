-- @feature_view(name = user_tag, entity = user, timestamp = tagged_at,
--               schedule = '1d', start = '2024-01-01')
SELECT user_id, tagged_at, tag FROM tags
