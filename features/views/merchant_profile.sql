-- @feature_view(name = merchant_profile, entity = merchant, timestamp = updated_at,
--               ttl = '365d', schedule = '1d', start = '2024-01-01')
-- @owner('merchant-ops')  @tags(['merchant'])
-- @description('Slowly changing merchant attributes')
SELECT merchant_id,
       updated_at,
       mcc,
       country AS merchant_country,
       risk_tier,
       DATE_DIFF('day', onboarded_at, updated_at) AS merchant_age_days
FROM merchants
