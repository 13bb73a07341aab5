-- The session's fields, or nil if it does not exist or expired.
local now = now_ms()
if not live(now) then
  return false
end
return session_reply()
