-- Keeps this node alive in presence: its keys' expiry and its place in the live
-- set move forward; nodes that stopped doing this (they died) are dropped.
--
-- KEYS: 1 live nodes, 2 this node's clients, 3 this node's counts
-- ARGV: 1 node id, 2 presence TTL (ms)
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local ttl = tonumber(ARGV[2])
redis.call('ZADD', KEYS[1], now + ttl, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
redis.call('PEXPIRE', KEYS[2], ttl)
redis.call('PEXPIRE', KEYS[3], ttl)
return 1
