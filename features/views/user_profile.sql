-- @feature_view(name = user_profile, entity = user, timestamp = updated_at,
--               ttl = '90d', schedule = '1d', start = '2024-01-01')
-- @owner('risk-team')  @tags(['kyc'])  @description('Slowly changing user attributes')
SELECT user_id,
       updated_at,
       country,
       kyc_level,
       credit_limit,
       email_domain,
       DATE_DIFF('day', signup_ts, updated_at) AS account_age_days
FROM users
