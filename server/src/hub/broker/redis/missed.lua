-- Reads what a resuming connection missed, in one consistent step: the held
-- messages of its targets newer than its id, whether any are gone, and the head
-- the read covers.
--
-- KEYS: 1 epoch, 2 seq, 3 age log, then for each target its history and its
--       evicted-up-to key
-- ARGV: 1 the client's epoch, 2 the client's seq, 3 history TTL (ms),
--       4 messages kept per target, 5 epoch to start if a new one is needed
local epoch, start = history_epoch(KEYS[1], KEYS[2], ARGV[5])
local head = tonumber(redis.call('GET', KEYS[2]))
local since = tonumber(ARGV[2])
local unknown = 0
-- An id from another epoch, or one this epoch has not reached (the sequence went
-- back): a gap, then what the client's own epoch still holds after its id (messages
-- that outlived the loss keep their ids), then what every later epoch holds.
local client_seq = since
if epoch ~= ARGV[1] or since > head or since < start then
  since = start
  unknown = 1
end
-- Each replayed message's rank: epochs in the order they were started (the client's
-- own first, the current one last), so the replay keeps time order across epochs.
-- An epoch missing from the chain (lost with the writes, or long gone) cannot be
-- placed: then only the current epoch is replayed.
local ranks = {}
if unknown == 1 then
  local chain = redis.call('LRANGE', epoch_chain(KEYS[1]), 0, -1)
  local own = nil
  for i, name in ipairs(chain) do
    if name == ARGV[1] then own = i end
  end
  if own then
    for i = own, #chain do ranks[chain[i]] = i - own end
  end
end
local current_rank = 65
local function rank_of(n, frame)
  local name = string.match(frame, '^id: (%w+)-')
  if name == epoch then
    if n > since then return current_rank end
  elseif name == ARGV[1] then
    if ranks[name] and n > client_seq then return ranks[name] end
  elseif ranks[name] then
    return ranks[name]
  end
  return nil
end
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local ttl = tonumber(ARGV[3])

-- The highest seq published longer ago than the TTL: anything up to it is gone.
local watermark = head
local recent = redis.call('XRANGE', KEYS[3], tostring(now - ttl), '+', 'COUNT', 1)
if #recent > 0 then watermark = tonumber(recent[1][2][2]) - 1 end

local gap = 0
if tonumber(ARGV[4]) == 0 and since < head then gap = 1 end
local result = {epoch, tostring(head), '0', tostring(unknown)}
for i = 4, #KEYS, 2 do
  local entries = redis.call('LRANGE', KEYS[i], 0, -1)
  if #entries == 0 then
    if watermark > since then gap = 1 end
  else
    if tonumber(redis.call('GET', KEYS[i + 1]) or '0') > since then gap = 1 end
    for _, entry in ipairs(entries) do
      local seq, frame = string.match(entry, '^(%d+) %d+ (.*)$')
      local n = tonumber(seq)
      local rank = rank_of(n, frame)
      if rank then
        if n <= watermark then
          gap = 1
        else
          result[#result + 1] = tostring(rank)
          result[#result + 1] = seq
          result[#result + 1] = frame
        end
      end
    end
  end
end
result[3] = tostring(gap)
return result
