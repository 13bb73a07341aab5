-- ARGV[3] '1' for keys only. nil: no session; else HKEYS or HGETALL.
local now = now_ms()
if not live(now) then
  return false
end
if ARGV[3] == '1' then
  return redis.call('HKEYS', KEYS[2])
end
return redis.call('HGETALL', KEYS[2])
