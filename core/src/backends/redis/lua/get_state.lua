-- ARGV[3] key. nil: no session; {1}: no such key; {1, "VERSION VALUE"}.
local now = now_ms()
if not live(now) then
  return false
end
local v = redis.call('HGET', KEYS[2], ARGV[3])
if v then
  return {1, v}
end
return {1}
