-- ARGV[3] key, ARGV[4] value JSON, ARGV[5] mode ('0' any, '1' only if
-- absent, '2' only at version ARGV[6]).
-- Returns {0, version} written, {1} no session, {2[, current version]}
-- the condition does not hold (nothing written).
local now = now_ms()
if not live(now) then
  return {1}
end
local cur = redis.call('HGET', KEYS[2], ARGV[3])
local curv = false
if cur then
  curv = tonumber(string.match(cur, '^(%d+) '))
end
local mode = ARGV[5]
if (mode == '1' and cur) or (mode == '2' and (not cur or curv ~= tonumber(ARGV[6]))) then
  if cur then
    return {2, curv}
  end
  return {2}
end
local ver = redis.call('HINCRBY', KEYS[1], 'version', 1)
redis.call('HSET', KEYS[2], ARGV[3], int(ver) .. ' ' .. ARGV[4])
renew(now)
return {0, ver}
