-- ARGV[3] the notification channel. Returns 1 if a live session was deleted.
local now = now_ms()
local was = live(now)
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3], KEYS[4])
redis.call('ZREM', KEYS[5], ARGV[1])
redis.call('ZREM', KEYS[6], ARGV[1])
if was then
  redis.call('PUBLISH', ARGV[3], ARGV[1])
  return 1
end
return 0
