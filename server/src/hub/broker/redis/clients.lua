-- Every live node's presence reports (JSON, one per client per node).
--
-- KEYS: 1 live nodes (zset of node -> expiry in ms)
-- ARGV: 1 node key prefix
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local reports = {}
for _, node in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], now, '+inf')) do
  for _, report in ipairs(redis.call('HVALS', ARGV[1] .. node .. ':clients')) do
    reports[#reports + 1] = report
  end
end
return reports
