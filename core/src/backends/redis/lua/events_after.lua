-- ARGV[3] stream id, ARGV[4] cursor seq, ARGV[5] most events to return.
-- nil: no session. Else {last_seq, trimmed_through, seq, record, ...}; no
-- events when the cursor is past the newest or before what was kept.
local now = now_ms()
if not live(now) then
  return false
end
local r = redis.call('HMGET', KEYS[1], 'last_seq', 'trimmed_through')
local last, trimmed = tonumber(r[1]), tonumber(r[2])
local out = {last, trimmed}
local after = tonumber(ARGV[4])
if after > last or after < trimmed then
  return out
end
local members = redis.call('ZRANGEBYLEX', KEYS[4],
  '(' .. ARGV[3] .. '\0' .. pad(after), '(' .. ARGV[3] .. '\1',
  'LIMIT', 0, tonumber(ARGV[5]))
local i = 1
while i <= #members do
  local seqs = {}
  for j = i, math.min(i + 499, #members) do
    seqs[#seqs + 1] = int(tonumber(string.sub(members[j], -20)))
  end
  local recs = redis.call('HMGET', KEYS[3], unpack(seqs))
  for j = 1, #seqs do
    out[#out + 1] = tonumber(seqs[j])
    out[#out + 1] = recs[j]
  end
  i = i + #seqs
end
return out
