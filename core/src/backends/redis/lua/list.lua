-- KEYS[1] id index, KEYS[2] expiry index; ARGV[1] list after this id ('' =
-- from the start), ARGV[2] most ids. Live ids in id order.
local now = now_ms()
local want = tonumber(ARGV[2])
local out = {}
local lo = '-'
if ARGV[1] ~= '' then
  lo = '(' .. ARGV[1]
end
while #out < want do
  local ids = redis.call('ZRANGEBYLEX', KEYS[1], lo, '+', 'LIMIT', 0, 500)
  if #ids == 0 then
    break
  end
  local scores = redis.call('ZMSCORE', KEYS[2], unpack(ids))
  for i, id in ipairs(ids) do
    if scores[i] and tonumber(scores[i]) > now then
      out[#out + 1] = id
      if #out == want then
        break
      end
    end
  end
  if #ids < 500 then
    break
  end
  lo = '(' .. ids[#ids]
end
return out
