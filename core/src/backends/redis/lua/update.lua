-- ARGV[3] the metadata the caller merged into, ARGV[4] the merged metadata.
-- Compare-and-set on the metadata text: {1} not found, {2} changed
-- meanwhile (the caller merges again), {0, fields...} written.
local now = now_ms()
if not live(now) then
  return {1}
end
if redis.call('HGET', KEYS[1], 'metadata') ~= ARGV[3] then
  return {2}
end
redis.call('HSET', KEYS[1], 'metadata', ARGV[4])
redis.call('HINCRBY', KEYS[1], 'version', 1)
renew(now)
local out = {0}
for _, v in ipairs(session_reply()) do
  out[#out + 1] = v
end
return out
