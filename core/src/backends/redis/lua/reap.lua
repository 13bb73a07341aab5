-- KEYS[1] expiry index, KEYS[2] id index of one shard, then four keys per
-- session (hash, state, events, stream index); ARGV the sessions' ids.
-- Removes each of them that has expired (not one that is live again).
-- Returns {sessions removed from the index, state entries, events}.
local now = now_ms()
local removed, st, ev = 0, 0, 0
for i, id in ipairs(ARGV) do
  local k = 2 + (i - 1) * 4
  local exp = redis.call('HGET', KEYS[k + 1], 'expires_at')
  if not (exp and tonumber(exp) > now) then
    st = st + redis.call('HLEN', KEYS[k + 2])
    ev = ev + redis.call('HLEN', KEYS[k + 3])
    redis.call('DEL', KEYS[k + 1], KEYS[k + 2], KEYS[k + 3], KEYS[k + 4])
    removed = removed + redis.call('ZREM', KEYS[1], id)
    redis.call('ZREM', KEYS[2], id)
  end
end
return {removed, st, ev}
