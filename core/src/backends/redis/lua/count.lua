-- KEYS[1] expiry index. How many sessions are live.
return redis.call('ZCOUNT', KEYS[1], '(' .. int(now_ms()), '+inf')
