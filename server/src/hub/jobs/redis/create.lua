-- Creates a task unless the cluster holds as many as allowed.
--
-- KEYS: 1 task hash, 2 task events, 3 running tasks (zset id -> idle deadline),
--       4 finished tasks (zset id -> expiry)
-- ARGV: 1 id, 2 title, 3 total, 4 created at (RFC 3339), 5 first event without its
--       id line, 6 most tasks, 7 idle timeout (ms), 8 TTL (ms)
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', now)
if redis.call('ZCARD', KEYS[3]) + redis.call('ZCARD', KEYS[4]) >= tonumber(ARGV[6]) then
  return 0
end
redis.call('HSET', KEYS[1], 'title', ARGV[2], 'total', ARGV[3], 'step', 0,
  'state', 'running', 'created_at', ARGV[4], 'last', 1)
redis.call('RPUSH', KEYS[2], 'id: 1\n' .. ARGV[5])
redis.call('ZADD', KEYS[3], now + tonumber(ARGV[7]), ARGV[1])
local keep = tonumber(ARGV[7]) + tonumber(ARGV[8])
redis.call('PEXPIRE', KEYS[1], keep)
redis.call('PEXPIRE', KEYS[2], keep)
return 1
