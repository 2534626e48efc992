-- The Redis store's one script: every store call is one EVALSHA of it.
--
-- ARGV[1] names the operation, ARGV[2] is the key prefix; the rest are the
-- operation's arguments. Keys (P = the prefix):
--   P .. "u:" .. key     hash: one upload record
--   P .. "id:" .. id     sorted set: the keys of the uploads with that
--                        client id, each scored by its record's expiry
--   P .. "o:" .. owner   sorted set: the keys of that owner's uploads,
--                        scored the same way
-- Every key expires (PEXPIREAT, on the server's clock): a record
-- ``stall + timeout`` after its last progress, ``timeout`` after its end;
-- an index with the last of its records (its highest score). Reads drop
-- the entries of expired records (their scores are past) from an index.
-- Times are the server's (TIME), kept as "seconds.microseconds" strings.

local op, prefix = ARGV[1], ARGV[2]
local clock = redis.call('TIME')
local now = clock[1] .. '.' .. string.format('%06d', tonumber(clock[2]))
local now_ms = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)

local function record_key(key) return prefix .. 'u:' .. key end
local function id_key(id) return prefix .. 'id:' .. id end
local function owner_key(owner) return prefix .. 'o:' .. owner end

-- Let ``index`` expire with the last of its records.
local function expire_index(index)
  local last = redis.call('ZRANGE', index, -1, -1, 'WITHSCORES')
  if last[2] then
    redis.call('PEXPIREAT', index, string.format('%d', tonumber(last[2])))
  end
end

local function index(index, key, at_ms)
  redis.call('ZADD', index, string.format('%d', at_ms), key)
  expire_index(index)
end

-- Expire record ``key`` at ``at_ms``, and its indexes with it.
local function expire(key, at_ms)
  local rk = record_key(key)
  redis.call('PEXPIREAT', rk, string.format('%d', at_ms))
  local fields = redis.call('HMGET', rk, 'id', 'owner')
  if fields[1] then index(id_key(fields[1]), key, at_ms) end
  if fields[2] then index(owner_key(fields[2]), key, at_ms) end
end

local function unindex(index, key)
  redis.call('ZREM', index, key)
  expire_index(index)
end

local function forget(key)
  local rk = record_key(key)
  local fields = redis.call('HMGET', rk, 'id', 'owner')
  redis.call('DEL', rk)
  if fields[1] then unindex(id_key(fields[1]), key) end
  if fields[2] then unindex(owner_key(fields[2]), key) end
end

-- The keys of ``index`` whose records are alive.
local function live(index)
  redis.call('ZREMRANGEBYSCORE', index, '-inf', string.format('%d', now_ms))
  return redis.call('ZRANGE', index, 0, -1)
end

-- The record a poll for ``id`` by ``owner`` (false: none) answers: the newest
-- of the owner's own, else the newest pending or ownerless one.
local function find(id, owner)
  local own, own_started, other, other_started = nil, -1, nil, -1
  for _, key in ipairs(live(id_key(id))) do
    local fields = redis.call('HMGET', record_key(key), 'owner_known', 'owner', 'started')
    local started = tonumber(fields[3])
    if not fields[1] then
      unindex(id_key(id), key)
    elseif fields[2] then
      if fields[2] == owner and started > own_started then
        own, own_started = key, started
      end
    elseif started > other_started then
      other, other_started = key, started
    end
  end
  return own or other
end

local function answer(key)
  if not key then return {now} end
  return {now, key, redis.call('HGETALL', record_key(key))}
end

local function set_progress(rk, received, files)
  redis.call('HSET', rk, 'received', received, 'updated', now)
  if files == '' then redis.call('HDEL', rk, 'files')
  else redis.call('HSET', rk, 'files', files) end
end

if op == 'start' then
  -- key, id ('' for none), path, size ('' for none), live_ms
  local key, id, path, size = ARGV[3], ARGV[4], ARGV[5], ARGV[6]
  local rk = record_key(key)
  redis.call('HSET', rk, 'path', path, 'started', now, 'updated', now,
             'received', '0', 'owner_known', '0', 'failed', '0', 'cancelled', '0')
  if size ~= '' then redis.call('HSET', rk, 'size', size) end
  if id ~= '' then redis.call('HSET', rk, 'id', id) end
  expire(key, now_ms + tonumber(ARGV[7]))
  return now

elseif op == 'update' then
  -- key, received, files ('' for none), live_ms, ended ('1': this write
  -- reports the read that ended the body) -> 1 when cancelled
  local rk = record_key(ARGV[3])
  local fields = redis.call('HMGET', rk, 'started', 'finished', 'cancelled')
  if not fields[1] or fields[2] then return 0 end
  set_progress(rk, ARGV[4], ARGV[5])
  if ARGV[7] == '1' then redis.call('HSET', rk, 'body_end', now) end
  expire(ARGV[3], now_ms + tonumber(ARGV[6]))
  return tonumber(fields[3])

elseif op == 'set_owner' then
  -- key[, owner] (no owner argument: None)
  local key, owner = ARGV[3], ARGV[4]
  local rk = record_key(key)
  local fields = redis.call('HMGET', rk, 'owner_known', 'id')
  if fields[1] ~= '0' then return 0 end
  redis.call('HSET', rk, 'owner_known', '1')
  if not owner then return 1 end
  redis.call('HSET', rk, 'owner', owner)
  index(owner_key(owner), key, now_ms + redis.call('PTTL', rk))
  if fields[2] then
    for _, other in ipairs(live(id_key(fields[2]))) do
      local old = redis.call('HMGET', record_key(other), 'owner_known', 'owner', 'finished')
      if other ~= key and old[1] == '1' and old[2] == owner and old[3] then
        forget(other)
      end
    end
  end
  return 1

elseif op == 'stage' then
  -- key, stage (JSON)
  local rk = record_key(ARGV[3])
  if redis.call('EXISTS', rk) == 1 then redis.call('HSET', rk, 'stage', ARGV[4]) end
  return 0

elseif op == 'finish' then
  -- key, received, files ('' for none), status ('' for none), failed,
  -- cancelled, timeout_ms
  local key = ARGV[3]
  local rk = record_key(key)
  if redis.call('EXISTS', rk) == 0 then return 0 end
  set_progress(rk, ARGV[4], ARGV[5])
  redis.call('HSET', rk, 'finished', now, 'failed', ARGV[7], 'cancelled', ARGV[8])
  if ARGV[6] == '' then redis.call('HDEL', rk, 'status')
  else redis.call('HSET', rk, 'status', ARGV[6]) end
  expire(key, now_ms + tonumber(ARGV[9]))
  return 1

elseif op == 'discard' then
  forget(ARGV[3])
  return 0

elseif op == 'get' then
  -- id[, owner] (no owner argument: None) -> {now[, key, fields]}
  return answer(find(ARGV[3], ARGV[4] or false))

elseif op == 'cancel' then
  -- id, stall_timeout[, owner] (no owner argument: None)
  --   -> {now[, key, fields]} of the cancelled record
  local key = find(ARGV[3], ARGV[5] or false)
  if not key then return {now} end
  local rk = record_key(key)
  local fields = redis.call('HMGET', rk, 'finished', 'size', 'received', 'updated',
                            'body_end')
  if fields[1] or fields[5] or (fields[2] and tonumber(fields[3]) >= tonumber(fields[2]))
      or tonumber(fields[4]) + tonumber(ARGV[4]) <= tonumber(now) then
    return {now}
  end
  redis.call('HSET', rk, 'cancelled', '1')
  return answer(key)

elseif op == 'list' then
  -- owner -> {now, key, fields, key, fields, ...}, in no order
  local found = {now}
  for _, key in ipairs(live(owner_key(ARGV[3]))) do
    local fields = redis.call('HGETALL', record_key(key))
    if #fields == 0 then
      unindex(owner_key(ARGV[3]), key)
    else
      found[#found + 1] = key
      found[#found + 1] = fields
    end
  end
  return found
end

return redis.error_reply('unknown operation ' .. tostring(op))
