-- Asks every node to close one client's streams; returns how many are open
-- cluster-wide.
--
-- KEYS: 1 live nodes, 2 bus channel
-- ARGV: 1 node key prefix, 2 client id
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local open = 0
for _, node in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], now, '+inf')) do
  local count = redis.call('HGET', ARGV[1] .. node .. ':counts', 'c:' .. ARGV[2])
  if count then open = open + tonumber(count) end
end
if open > 0 then redis.call('PUBLISH', KEYS[2], 'k ' .. ARGV[2]) end
return open
