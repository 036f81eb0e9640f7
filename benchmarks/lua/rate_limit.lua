-- A fixed-window rate limit timed by the server: count one call, and open the window (its life
-- counted from the server's clock) on the first call of the window.
-- KEYS: the caller's counter
-- ARGV: window in ms
-- Returns {calls counted in this window, ms until the window ends}.
local hits = redis.call('INCR', KEYS[1])
if hits == 1 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
end
return {hits, redis.call('PTTL', KEYS[1])}
