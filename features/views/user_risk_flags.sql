-- @feature_view(name = user_risk_flags, entity = user, timestamp = updated_at,
--               ttl = '90d', schedule = '1d', start = '2024-01-01')
-- @owner('risk-team')  @tags(['kyc', 'rules'])
-- @description('Rule-style boolean flags derived from the user profile view')
SELECT user_id,
       updated_at,
       country IN ('NG', 'RU', 'BR') AS high_risk_country,
       account_age_days < 30         AS new_account,
       kyc_level <= 1                AS low_kyc
FROM user_profile
