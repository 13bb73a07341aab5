-- Remove one expired session (nothing if it is live again). Returns
-- {sessions removed from the index, state entries, events}.
local now = now_ms()
if live(now) then
  return {0, 0, 0}
end
local st = redis.call('HLEN', KEYS[2])
local ev = redis.call('HLEN', KEYS[3])
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3], KEYS[4])
local removed = redis.call('ZREM', KEYS[5], ARGV[1])
redis.call('ZREM', KEYS[6], ARGV[1])
return {removed, st, ev}
