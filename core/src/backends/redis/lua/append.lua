-- ARGV[3] stream id, ARGV[4] the encoded event (type, retry, data),
-- ARGV[5] max events kept, ARGV[6] notification channel.
-- One script, so one atomic step: bump seq and version, store the event,
-- trim beyond the limit, slide the TTL, publish. Returns {seq, now} or nil.
local now = now_ms()
if not live(now) then
  return false
end
local seq = redis.call('HINCRBY', KEYS[1], 'last_seq', 1)
redis.call('HINCRBY', KEYS[1], 'version', 1)
redis.call('HSET', KEYS[3], int(seq), ARGV[3] .. '\0' .. int(now) .. '\0' .. ARGV[4])
redis.call('ZADD', KEYS[4], 0, ARGV[3] .. '\0' .. pad(seq))
local max = tonumber(ARGV[5])
local trimmed = tonumber(redis.call('HGET', KEYS[1], 'trimmed_through'))
if seq - trimmed > max then
  local upto = seq - max
  for old = trimmed + 1, upto do
    local rec = redis.call('HGET', KEYS[3], int(old))
    if rec then
      local stream = string.sub(rec, 1, string.find(rec, '\0', 1, true) - 1)
      redis.call('ZREM', KEYS[4], stream .. '\0' .. pad(old))
      redis.call('HDEL', KEYS[3], int(old))
    end
  end
  redis.call('HSET', KEYS[1], 'trimmed_through', int(upto))
end
renew(now)
redis.call('PUBLISH', ARGV[6], ARGV[1])
return {seq, now}
