-- Accepts one message, atomically: the next id, the history append with its
-- bounds, the cluster-wide delivered count and the PUBLISH to every node. Because
-- Redis runs a script as one step, ids are assigned and published in the same
-- order, so every node receives them in id order.
--
-- KEYS: 1 epoch, 2 seq, 3 age log, 4 target history, 5 target evicted-up-to,
--       6 live nodes (zset), 7 bus channel
-- ARGV: 1 epoch to start if a new one is needed (epoch.lua), 2 target key, 3 id
--       tag, 4 frame without its id line, 5 history TTL (ms), 6 messages kept per
--       target, 7 node key prefix
local epoch = history_epoch(KEYS[1], KEYS[2], ARGV[1])
local seq = redis.call('INCR', KEYS[2])
local frame = 'id: ' .. epoch .. '-' .. seq .. '-' .. ARGV[3] .. '\n' .. ARGV[4]
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local ttl = tonumber(ARGV[5])
local per_target = tonumber(ARGV[6])

-- The age log maps time to seq, so that "everything older than the TTL" is a seq.
redis.call('XADD', KEYS[3], 'MINID', '=', tostring(now - ttl), '*', 's', seq)
redis.call('PEXPIRE', KEYS[3], ttl)

if per_target > 0 then
  if redis.call('EXISTS', KEYS[4]) == 0 then
    -- A new history inherits the age watermark: anything up to it may have been
    -- this target's and is gone, so resuming from before it must report a gap.
    local oldest = redis.call('XRANGE', KEYS[3], '-', '+', 'COUNT', 1)
    local watermark = tonumber(oldest[1][2][2]) - 1
    if watermark > 0 then redis.call('SET', KEYS[5], watermark) end
  end
  redis.call('RPUSH', KEYS[4], seq .. ' ' .. now .. ' ' .. frame)
  local evicted = nil
  while redis.call('LLEN', KEYS[4]) > per_target do
    evicted = redis.call('LPOP', KEYS[4])
  end
  while true do
    local head = redis.call('LINDEX', KEYS[4], 0)
    if not head then break end
    local at = tonumber(string.match(head, '^%d+ (%d+) '))
    if at >= now - ttl then break end
    evicted = redis.call('LPOP', KEYS[4])
  end
  if evicted then redis.call('SET', KEYS[5], string.match(evicted, '^(%d+) ')) end
  redis.call('PEXPIRE', KEYS[4], ttl)
  redis.call('PEXPIRE', KEYS[5], ttl)
end

-- Connections registered cluster-wide for this target, from live nodes' counts.
local delivered = 0
for _, node in ipairs(redis.call('ZRANGEBYSCORE', KEYS[6], now, '+inf')) do
  local count = redis.call('HGET', ARGV[7] .. node .. ':counts', ARGV[2])
  if count then delivered = delivered + tonumber(count) end
end

redis.call('PUBLISH', KEYS[7], 'm ' .. epoch .. ' ' .. seq .. ' ' .. ARGV[2] .. '\n' .. frame)
return {epoch, seq, delivered}
