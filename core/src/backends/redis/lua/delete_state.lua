-- ARGV[3] key. Returns -1 no session, 1 deleted, 0 there was no such key.
local now = now_ms()
if not live(now) then
  return -1
end
local n = redis.call('HDEL', KEYS[2], ARGV[3])
if n == 1 then
  redis.call('HINCRBY', KEYS[1], 'version', 1)
end
renew(now)
return n
