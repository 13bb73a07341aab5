-- KEYS[1] the key prefix's config hash; ARGV[1] shard count, ARGV[2] key
-- layout, written if the prefix has no config yet. Returns {shards, layout}
-- as stored (-1 for a missing field).
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('HSET', KEYS[1], 'shards', ARGV[1], 'layout', ARGV[2])
end
local r = redis.call('HMGET', KEYS[1], 'shards', 'layout')
return {tonumber(r[1]) or -1, tonumber(r[2]) or -1}
