-- ARGV[3] ttl_ms, ARGV[4] metadata JSON, ARGV[5] max live sessions or ''.
-- Returns {0, now} created, {1} a live session has this id, {2} limit.
local now = now_ms()
if live(now) then
  return {1}
end
if ARGV[5] ~= '' then
  local n = redis.call('ZCOUNT', KEYS[5], '(' .. int(now), '+inf')
  if n >= tonumber(ARGV[5]) then
    return {2}
  end
end
-- An expired session of this id (not cleaned up yet) is replaced whole.
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3], KEYS[4])
local ttl = tonumber(ARGV[3])
local exp = now + ttl
redis.call('HSET', KEYS[1], 'created_at', int(now), 'last_activity', int(now),
  'expires_at', int(exp), 'ttl_ms', ARGV[3], 'metadata', ARGV[4], 'version', '1',
  'last_seq', '0', 'trimmed_through', '0')
redis.call('PEXPIRE', KEYS[1], int(ttl + tonumber(ARGV[2])))
redis.call('ZADD', KEYS[5], int(exp), ARGV[1])
redis.call('ZADD', KEYS[6], 0, ARGV[1])
return {0, now}
