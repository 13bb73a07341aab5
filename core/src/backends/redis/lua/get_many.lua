-- KEYS session hashes of one shard. For each, its fields (as
-- session_reply), or nil if it does not exist or expired.
local now = now_ms()
local out = {}
for i, key in ipairs(KEYS) do
  local f = session_fields(key)
  if f[3] and tonumber(f[3]) > now then
    out[i] = f
  else
    out[i] = false
  end
end
return out
