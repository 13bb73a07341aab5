-- Shared by every script of the Redis backend (prepended at build time).
-- Session scripts get KEYS = {session hash, state hash, event hash,
-- stream index, expiry index, id index}, all in the session's shard (one
-- hash tag, so one cluster slot), and ARGV = {session id, native-expiry
-- grace in ms, ...their own arguments}. Shard scripts get keys of one shard.
-- Time is the server's clock (TIME), so every process agrees on expiry.
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- An integer as decimal text (never in exponent form).
local function int(x)
  return string.format('%d', x)
end

-- A seq as 20 digits, so the stream index orders by seq.
local function pad(seq)
  return string.format('%020d', seq)
end

-- Whether the session exists and has not expired.
local function live(now)
  local exp = redis.call('HGET', KEYS[1], 'expires_at')
  return exp ~= false and tonumber(exp) > now
end

-- Slide the TTL: new expires_at, native expiry of every key of the
-- session, and the expiry index.
local function renew(now)
  local ttl = tonumber(redis.call('HGET', KEYS[1], 'ttl_ms'))
  local exp = now + ttl
  redis.call('HSET', KEYS[1], 'last_activity', int(now), 'expires_at', int(exp))
  local px = int(ttl + tonumber(ARGV[2]))
  for i = 1, 4 do
    redis.call('PEXPIRE', KEYS[i], px)
  end
  redis.call('ZADD', KEYS[5], int(exp), ARGV[1])
end

-- The fields of the session hash `key`, in the order the backend reads.
local function session_fields(key)
  return redis.call('HMGET', key, 'created_at', 'last_activity', 'expires_at',
    'ttl_ms', 'metadata', 'version', 'last_seq')
end

local function session_reply()
  return session_fields(KEYS[1])
end
