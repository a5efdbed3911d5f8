-- @source(name = profiles, timestamp = updated_at, batch = json('data/profiles/'))
CREATE TABLE profiles (user_id BIGINT, merchant STRING, score DOUBLE, updated_at TIMESTAMP);
