-- KEYS[1] expiry index, ARGV[1] batch size. Ids of expired sessions.
return redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', int(now_ms()), 'LIMIT', 0, tonumber(ARGV[1]))
