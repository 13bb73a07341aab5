-- Renew the TTL without a version bump; the session's fields, or nil.
local now = now_ms()
if not live(now) then
  return false
end
renew(now)
return session_reply()
