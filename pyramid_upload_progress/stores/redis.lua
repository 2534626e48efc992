-- The Redis store's one script: every store call is one EVALSHA of it per
-- hash slot it touches, and every key it touches is declared in KEYS.
--
-- ARGV[1] names the operation; the rest are its arguments. Keys (P = the
-- prefix; the part in braces is the hash tag, what picks the slot):
--   P .. "u:{" .. tag .. "}"   hash: the uploads of one tag, the client's
--                              upload id (or, for an upload without one, its
--                              own random part R); upload R's fields are
--                              "R:path", "R:received", ... and "R:expires"
--                              (epoch ms) says when it is forgotten
--   P .. "o:" .. owner         sorted set: that owner's uploads (store keys),
--                              each scored by a bound of its expiry
-- A poll by id and every write of an upload touch its hash; naming its
-- owner, ending it and discarding it touch its owner's index too, which on
-- a cluster may be in another slot: there the caller sends 'index_owner'
-- to it at the same time; on one server it is one call (KEYS[2]).
--
-- A hash expires with the last of its uploads (PEXPIREAT, on the server's
-- clock), an owner index with its last entry; writes drop what has expired,
-- reads (get, cancel's lookup, owner_list) only skip it, so that they can be
-- run read-only (EVALSHA_RO) on replicas. Times are the server's (TIME),
-- kept as "seconds.microseconds" strings.

local op = ARGV[1]
local clock = redis.call('TIME')
local now = clock[1] .. '.' .. string.format('%06d', tonumber(clock[2]))
local now_ms = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)

local FIELDS = {'path', 'started', 'updated', 'received', 'size', 'id', 'owner',
                'owner_known', 'failed', 'cancelled', 'files', 'stage', 'finished',
                'status', 'body_end', 'expires', 'indexed'}

local function ms(number) return string.format('%d', number) end

-- Every upload of ``hash``: {R = {field = value}}, the expired ones too.
local function uploads(hash)
  local flat = redis.call('HGETALL', hash)
  local found = {}
  for i = 1, #flat, 2 do
    local r, field = string.match(flat[i], '^([^:]*):(.*)$')
    if r then
      found[r] = found[r] or {}
      found[r][field] = flat[i + 1]
    end
  end
  return found
end

local function alive(upload)
  return upload.expires ~= nil and tonumber(upload.expires) > now_ms
end

-- Upload ``r`` of ``hash``, or nil when it is gone or expired.
local function one(hash, r)
  local values = redis.call('HMGET', hash, r .. ':started', r .. ':expires')
  if values[1] and tonumber(values[2]) > now_ms then return true end
  return nil
end

local function set(hash, r, ...)
  local args = {...}
  for i = 1, #args, 2 do args[i] = r .. ':' .. args[i] end
  redis.call('HSET', hash, unpack(args))
end

local function forget(hash, r)
  local names = {}
  for i, field in ipairs(FIELDS) do names[i] = r .. ':' .. field end
  redis.call('HDEL', hash, unpack(names))
end

-- Drop the expired uploads of ``hash``; let it expire with the last of the rest.
local function tidy(hash)
  local last = nil
  for r, upload in pairs(uploads(hash)) do
    if not alive(upload) then
      forget(hash, r)
    elseif last == nil or tonumber(upload.expires) > last then
      last = tonumber(upload.expires)
    end
  end
  if last then redis.call('PEXPIREAT', hash, ms(last)) end
end

local function set_progress(hash, r, received, files)
  set(hash, r, 'received', received, 'updated', now)
  if files == '' then redis.call('HDEL', hash, r .. ':files')
  else set(hash, r, 'files', files) end
end

-- record.poll_answer: the upload a poll for ``id`` by ``owner`` (false:
-- none) answers, from ``hash``. Returns R and its fields, or nil.
local function find(hash, id, owner)
  local own, own_started, other, other_started = nil, -1, nil, -1
  local all = uploads(hash)
  for r, upload in pairs(all) do
    if alive(upload) and upload.id == id and upload.started then
      local started = tonumber(upload.started)
      if upload.owner then
        if upload.owner == owner and started > own_started then
          own, own_started = r, started
        end
      elseif started > other_started then
        other, other_started = r, started
      end
    end
  end
  local r = own or other
  if r then return r, all[r] end
  return nil
end

local function answer(r, upload)
  if not r then return {now} end
  local flat = {}
  for field, value in pairs(upload) do
    flat[#flat + 1] = field
    flat[#flat + 1] = value
  end
  return {now, r, flat}
end

-- Name upload ``r`` of ``hash`` to ``owner`` (nil: nobody); forget the
-- uploads it replaces (record.replaces). 1 when named, 0 when it is gone
-- or was named before.
local function own(hash, r, owner, lifetime_ms)
  local values = redis.call('HMGET', hash, r .. ':owner_known', r .. ':expires')
  if values[1] ~= '0' or tonumber(values[2]) <= now_ms then return 0 end
  set(hash, r, 'owner_known', '1')
  if not owner then return 1 end
  set(hash, r, 'owner', owner, 'indexed', ms(now_ms + lifetime_ms))
  for other, upload in pairs(uploads(hash)) do
    if other ~= r and upload.owner == owner and upload.finished then
      forget(hash, other)
    end
  end
  return 1
end

-- Score store key ``key`` in the owner index ``index`` to expire
-- ``lifetime_ms`` from now (0: drop it), trimming what has expired, and
-- let the index expire with its last entry.
local function index_owner(index, key, lifetime_ms)
  redis.call('ZREMRANGEBYSCORE', index, '-inf', ms(now_ms))
  if lifetime_ms > 0 then
    redis.call('ZADD', index, ms(now_ms + lifetime_ms), key)
  else
    redis.call('ZREM', index, key)
  end
  local last = redis.call('ZRANGE', index, -1, -1, 'WITHSCORES')
  if last[2] then redis.call('PEXPIREAT', index, ms(tonumber(last[2]))) end
  return 1
end

-- KEYS[1] is the upload's hash (the owner index for the owner operations);
-- KEYS[2], when given, the upload's owner index, which the operation then
-- updates too (on one server: no slots to keep apart; on a cluster the
-- caller sends 'index_owner' to it at the same time instead).
-- ARGV[2] is the store key, "<id>:<R>" (or ":<R>").
local hash, key, owner_index = KEYS[1], ARGV[2], KEYS[2]
local r = string.match(key, '([^:]*)$')

if op == 'start' then
  -- ARGV: key, id ('' for none), path, size ('' for none), live_ms
  local id, path, size, live_ms = ARGV[3], ARGV[4], ARGV[5], tonumber(ARGV[6])
  set(hash, r, 'path', path, 'started', now, 'updated', now, 'received', '0',
      'owner_known', '0', 'failed', '0', 'cancelled', '0', 'expires', ms(now_ms + live_ms))
  if size ~= '' then set(hash, r, 'size', size) end
  if id ~= '' then set(hash, r, 'id', id) end
  tidy(hash)
  return now

elseif op == 'update' then
  -- ARGV: key, received, files ('' for none), ended ('1': the body's last
  -- read), live_ms -> {cancelled (0/1)[, owner whose index to tell]}
  -- The most frequent call: one read, one write, the expiry.
  local values = redis.call('HMGET', hash, r .. ':started', r .. ':finished',
                            r .. ':cancelled', r .. ':expires', r .. ':body_end',
                            r .. ':owner', r .. ':indexed')
  -- record.progressed: a finished (or forgotten) record takes no more
  if not values[1] or values[2] or tonumber(values[4]) <= now_ms then return {0} end
  local live_ms = tonumber(ARGV[6])
  local expires = now_ms + live_ms
  local fields = {'received', ARGV[3], 'updated', now, 'expires', ms(expires)}
  -- files only grow (a body that is not multipart has none, ever)
  if ARGV[4] ~= '' then table.insert(fields, 'files'); table.insert(fields, ARGV[4]) end
  -- record.progressed: body_end once, never for a cancelled upload
  if ARGV[5] == '1' and not values[5] and values[3] ~= '1' then
    table.insert(fields, 'body_end'); table.insert(fields, now)
  end
  -- Its owner's index is told once per tenth of the upload's lifetime.
  local owner = nil
  if values[6] and tonumber(values[7]) < expires then
    owner = values[6]
    table.insert(fields, 'indexed')
    table.insert(fields, ms(expires + math.floor(live_ms / 10)))
  end
  set(hash, r, unpack(fields))
  -- No upload of the hash outlives this one (each expires at most live_ms
  -- after its last write): no tidying needed.
  redis.call('PEXPIREAT', hash, ms(expires))
  return {tonumber(values[3]), owner}

elseif op == 'own' then
  -- ARGV: key, lifetime_ms (of its owner index entry)[, owner] (no owner
  -- argument: None)
  local lifetime_ms = tonumber(ARGV[3])
  local named = own(hash, r, ARGV[4], lifetime_ms)
  if named == 1 and owner_index then index_owner(owner_index, key, lifetime_ms) end
  return named

elseif op == 'index_owner' then
  -- KEYS: owner index; ARGV: key, lifetime_ms
  return index_owner(hash, key, tonumber(ARGV[3]))

elseif op == 'stage' then
  -- ARGV: key, stage (JSON)
  if one(hash, r) then set(hash, r, 'stage', ARGV[3]) end
  return 0

elseif op == 'finish' then
  -- ARGV: key, received, files ('' for none), status ('' for none),
  -- failed, cancelled, timeout_ms
  if not one(hash, r) then return 0 end
  set_progress(hash, r, ARGV[3], ARGV[4])
  set(hash, r, 'finished', now, 'failed', ARGV[6], 'cancelled', ARGV[7])
  if ARGV[5] == '' then redis.call('HDEL', hash, r .. ':status')
  else set(hash, r, 'status', ARGV[5]) end
  local timeout_ms = tonumber(ARGV[8])
  set(hash, r, 'expires', ms(now_ms + timeout_ms))
  tidy(hash)
  if owner_index then index_owner(owner_index, key, timeout_ms) end
  return 1

elseif op == 'discard' then
  -- ARGV: key
  forget(hash, r)
  tidy(hash)
  if owner_index then index_owner(owner_index, key, 0) end
  return 0

elseif op == 'get' then
  -- ARGV: -, id[, owner] (no owner argument: None) -> {now[, R, fields]}
  return answer(find(hash, ARGV[3], ARGV[4] or false))

elseif op == 'cancel' then
  -- ARGV: -, id, stall_timeout[, owner] (no owner argument: None)
  --   -> {now[, R, fields]} of the cancelled upload (record.can_cancel)
  local found, upload = find(hash, ARGV[3], ARGV[5] or false)
  if not found or upload.finished or upload.body_end
      or tonumber(upload.updated) + tonumber(ARGV[4]) <= tonumber(now) then
    return {now}
  end
  set(hash, found, 'cancelled', '1')
  upload.cancelled = '1'
  return answer(found, upload)

elseif op == 'owner_list' then
  -- KEYS: owner index; ARGV: - -> {now, key, key, ...}: the owner's
  -- uploads that may be alive, for the caller to read
  local found = redis.call('ZRANGEBYSCORE', hash, '(' .. ms(now_ms), '+inf')
  table.insert(found, 1, now)
  return found
end

return redis.error_reply('unknown operation ' .. tostring(op))
