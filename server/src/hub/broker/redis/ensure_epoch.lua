-- Where the shared history is: its epoch (a new one if Redis has none or lost
-- writes, see epoch.lua) and its last seq.
--
-- KEYS: 1 epoch, 2 seq
-- ARGV: 1 epoch to start if a new one is needed
local epoch = history_epoch(KEYS[1], KEYS[2], ARGV[1])
return {epoch, redis.call('GET', KEYS[2])}
