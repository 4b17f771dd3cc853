-- Prepended to every script that reads or writes the shared history's position.
--
-- The history's epoch is kept as one value, "<epoch> <run id> <start>": the run id of
-- the Redis process the epoch was started on, and the seq it started after. A new
-- epoch starts when none is held, when the sequence is gone, or when this Redis
-- process is not the one the epoch was started on: a Redis restarted from a
-- snapshot or an older AOF, a promoted replica or a restored backup may hold less
-- than was given out, and the ids it lost must never name other messages
-- (docs/contract.md §3.1). Redis cannot tell a complete copy from a partial one, so
-- every such change starts an epoch; resuming across it costs a client one `gap`.
-- `INFO server` costs about 3 µs a call (docs/reliability.md).
--
-- Every epoch started is appended to `<epoch key>:chain` (the last 64), so that a
-- client resuming from an older epoch can be replayed the epochs that came after
-- its own, in order. (The key is derived here rather than declared: Herald runs on
-- one Redis or a primary with replicas, never Redis Cluster.)
local function epoch_chain(epoch_key)
  return epoch_key .. ':chain'
end

local function history_epoch(epoch_key, seq_key, fresh_epoch)
  local run_id = string.match(redis.call('INFO', 'server'), 'run_id:(%x+)')
  local held = redis.call('GET', epoch_key)
  if held and redis.call('EXISTS', seq_key) == 1 then
    local epoch, owner, start = string.match(held, '^(%w+) (%x+) (%d+)$')
    if epoch and owner == run_id then return epoch, tonumber(start) end
  end
  local start = tonumber(redis.call('GET', seq_key) or '0')
  redis.call('SET', seq_key, start)
  redis.call('SET', epoch_key, fresh_epoch .. ' ' .. run_id .. ' ' .. start)
  redis.call('RPUSH', epoch_chain(epoch_key), fresh_epoch)
  redis.call('LTRIM', epoch_chain(epoch_key), -64, -1)
  return fresh_epoch, start
end

