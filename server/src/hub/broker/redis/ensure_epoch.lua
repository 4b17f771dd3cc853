-- Where the shared history is: its epoch (created if Redis has none, e.g. after a
-- flush) and its last seq.
--
-- KEYS: 1 epoch, 2 seq
-- ARGV: 1 epoch to create if none
local epoch = redis.call('GET', KEYS[1])
if not epoch then
  epoch = ARGV[1]
  redis.call('SET', KEYS[1], epoch)
end
return {epoch, redis.call('GET', KEYS[2]) or '0'}
