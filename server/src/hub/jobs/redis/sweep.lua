-- Fails running tasks nobody updated within the idle timeout, and forgets expired
-- finished ones. Every node runs it; being atomic, each task is failed once.
--
-- KEYS: 1 running tasks, 2 finished tasks, 3 bus
-- ARGV: 1 task key prefix, 2 the final event without its id line, 3 the error,
--       4 TTL (ms), 5 events kept per task
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, 100)
for _, id in ipairs(due) do
  redis.call('ZREM', KEYS[1], id)
  local task = ARGV[1] .. id
  local events = task .. ':events'
  if redis.call('HGET', task, 'state') == 'running' then
    redis.call('HSET', task, 'state', 'failed', 'error', ARGV[3])
    local n = redis.call('HINCRBY', task, 'last', 1)
    local frame = 'id: ' .. n .. '\n' .. ARGV[2]
    redis.call('RPUSH', events, frame)
    redis.call('LTRIM', events, -tonumber(ARGV[5]), -1)
    redis.call('ZADD', KEYS[2], now + tonumber(ARGV[4]), id)
    redis.call('PEXPIRE', task, tonumber(ARGV[4]))
    redis.call('PEXPIRE', events, tonumber(ARGV[4]))
    redis.call('PUBLISH', KEYS[3], 'j ' .. id .. ' ' .. n .. ' 1\n' .. frame)
  end
end
return #due
