-- Records one change to a running task: the next event id, the event in the
-- task's log, its deadlines, and the PUBLISH that reaches watchers on every node.
--
-- KEYS: 1 task hash, 2 task events, 3 running tasks, 4 finished tasks, 5 bus
-- ARGV: 1 id, 2 `progress`, `result` or `error`, 3 step, 4 for progress the
--       message as a JSON string ('' for none), else the final event without its
--       id line, 5 the result (JSON) or error, 6 idle timeout (ms), 7 TTL (ms),
--       8 events kept per task
if redis.call('EXISTS', KEYS[1]) == 0 then return {'missing'} end
if redis.call('HGET', KEYS[1], 'state') ~= 'running' then return {'finished'} end
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local body
if ARGV[2] == 'progress' then
  local total = redis.call('HGET', KEYS[1], 'total')
  local step = tonumber(ARGV[3])
  if step > tonumber(total) then return {'range', total} end
  redis.call('HSET', KEYS[1], 'step', ARGV[3])
  local data = '{"step":' .. ARGV[3] .. ',"total":' .. total
  if ARGV[4] ~= '' then
    redis.call('HSET', KEYS[1], 'message', ARGV[4])
    data = data .. ',"message":' .. ARGV[4]
  else
    redis.call('HDEL', KEYS[1], 'message')
  end
  body = 'event: progress\ndata: ' .. data .. '}\n\n'
elseif ARGV[2] == 'result' then
  redis.call('HSET', KEYS[1], 'state', 'done', 'result', ARGV[5])
  body = ARGV[4]
else
  redis.call('HSET', KEYS[1], 'state', 'failed', 'error', ARGV[5])
  body = ARGV[4]
end
local n = redis.call('HINCRBY', KEYS[1], 'last', 1)
local frame = 'id: ' .. n .. '\n' .. body
redis.call('RPUSH', KEYS[2], frame)
redis.call('LTRIM', KEYS[2], -tonumber(ARGV[8]), -1)
local finished = '0'
local keep
if ARGV[2] == 'progress' then
  redis.call('ZADD', KEYS[3], now + tonumber(ARGV[6]), ARGV[1])
  keep = tonumber(ARGV[6]) + tonumber(ARGV[7])
else
  finished = '1'
  redis.call('ZREM', KEYS[3], ARGV[1])
  redis.call('ZADD', KEYS[4], now + tonumber(ARGV[7]), ARGV[1])
  keep = tonumber(ARGV[7])
end
redis.call('PEXPIRE', KEYS[1], keep)
redis.call('PEXPIRE', KEYS[2], keep)
redis.call('PUBLISH', KEYS[5], 'j ' .. ARGV[1] .. ' ' .. n .. ' ' .. finished .. '\n' .. frame)
return {'ok'}
