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
-- that outlived the loss keep their ids), then everything this epoch holds.
local client_seq = since
if epoch ~= ARGV[1] or since > head or since < start then
  since = start
  unknown = 1
end
local own_id = 'id: ' .. epoch .. '-'
local client_id = 'id: ' .. ARGV[1] .. '-'
local function replayable(n, frame)
  if string.sub(frame, 1, #own_id) == own_id then return n > since end
  -- Another epoch's message: only the client's own epoch's, after its id.
  return unknown == 1 and ARGV[1] ~= '' and n > client_seq
    and string.sub(frame, 1, #client_id) == client_id
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
      if replayable(n, frame) then
        if n <= watermark then
          gap = 1
        else
          result[#result + 1] = seq
          result[#result + 1] = frame
        end
      end
    end
  end
end
result[3] = tostring(gap)
return result
