-- @source(name = tags, timestamp = tagged_at, batch = csv('data/tags/'))
CREATE TABLE tags (user_id BIGINT, tag STRING, tagged_at TIMESTAMP);
