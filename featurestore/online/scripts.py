"""Server-side Redis scripts: the newest-row-wins compare-and-write, one call per batch."""

from __future__ import annotations

import hashlib

__all__ = [
    "PUT_NEWER",
    "PUT_NEWER_SHA",
    "APPEND_EVENTS",
    "APPEND_EVENTS_META",
    "APPEND_EVENTS_SHA",
    "APPEND_LIVE",
    "events_only",
]

# KEYS: the batch's row keys, then (when tracking pushes) the version's pushed-keys set.
# ARGV: n, has_expiry (1/0), prefix length to strip for the pushed set (0: do not track),
#       the n rows, then the n expiry times (Unix ms) when has_expiry.
# A row is [event_ts_us, v1, ..., vN, created_us]: a stored row is replaced only by one with a
# greater event time, or the same event time and a greater created time (codec.newer). The
# stored rows are read with one MGET; an identical row (a rerun) is skipped without parsing.
# Numbers are compared as Lua doubles: exact for microsecond times until the year 2255.
PUT_NEWER = """
local n = tonumber(ARGV[1])
local has_exp = ARGV[2] == '1'
local strip = tonumber(ARGV[3])
local olds = redis.call('MGET', unpack(KEYS, 1, n))
local match, find, sub = string.match, string.find, string.sub
-- the last number of a row: its created time (searched from near the end: at most 21 characters)
local function created(row)
  local at = find(row, ',%-?%d+%]$', #row - 22)
  return at and tonumber(sub(row, at + 1, -2)) or 0
end
local written = 0
for i = 1, n do
  local key, new, old = KEYS[i], ARGV[3 + i], olds[i]
  local put = true
  if old then
    if old == new then
      put = false
    else
      local ots = tonumber(match(old, '^%[(%-?%d+)'))
      local nts = tonumber(match(new, '^%[(%-?%d+)'))
      if ots == nil or nts > ots then
        put = true
      elseif nts < ots then
        put = false
      else
        put = created(new) > created(old)
      end
    end
  end
  if put then
    if has_exp then
      redis.call('SET', key, new, 'PXAT', ARGV[3 + n + i])
    else
      redis.call('SET', key, new)
    end
    written = written + 1
  end
  if strip > 0 then
    redis.call('SADD', KEYS[n + 1], sub(key, strip + 1))
  end
end
return written
"""

PUT_NEWER_SHA = hashlib.sha1(PUT_NEWER.encode()).hexdigest()


# Aggregation views: one hash per entity, field = event identity, value = event payload
# ([event_ts_us, created_us, seq, v1, ..., vN]; only its first number is read here), plus the
# field META = "<newest>,<oldest>" (the entity's newest and oldest stored event times; readers
# skip it: it does not start with "[").
# KEYS: the batch's entity hashes. ARGV: n, horizon_us, replace (1/0), then per entity its
# event count c and c (identity, payload) pairs. Per entity: HSETNX the new events newer
# than (newest - horizon) (an identity already there is not added again), delete the older
# ones, and expire the hash when its newest event leaves the longest window. Returns events added.
# The stored events are only read (HGETALL) when the oldest of them leaves the window, on a
# replace, or when META is missing: a push costs O(its events), not O(the entity's state).
APPEND_EVENTS_META = "m"
_APPEND_FUNCTIONS = """
local match = string.match
local META = 'm'  -- APPEND_EVENTS_META
local function ts_of(payload) return tonumber(match(payload, '^%[(%-?%d+)')) end
-- an event without its seq (the third number): a pushed event equals its copy read back from offline
local function content(payload)
  local head, tail = match(payload, '^(%[[^,]*,[^,]*),[^,%]]*(.*)$')
  return head .. tail
end
-- the stored events (HGETALL's reply) minus those doom(field, payload, ts) picks: deleted; returns the
-- newest and oldest time of those left
local function scan_stored(key, stored, doom)
  local newest, oldest, doomed = nil, nil, {}
  for j = 2, #stored, 2 do
    local field = stored[j - 1]
    if field ~= META then
      local ts = ts_of(stored[j])
      if doom(field, stored[j], ts) then
        doomed[#doomed + 1] = field
        if #doomed == 1000 then
          redis.call('HDEL', key, unpack(doomed))
          doomed = {}
        end
      else
        if newest == nil or ts > newest then newest = ts end
        if oldest == nil or ts < oldest then oldest = ts end
      end
    end
  end
  if #doomed > 0 then redis.call('HDEL', key, unpack(doomed)) end
  return newest, oldest
end
local function scan(key, doom) return scan_stored(key, redis.call('HGETALL', key), doom) end
local keep = function(field, payload, ts) return false end
-- appends the events of KEYS[first + 1 .. first + n] read from ARGV from pos on; returns (added, next pos)
local function append_entities(first, n, horizon, replace, pos)
  local added = 0
  for i = 1, n do
    local key = KEYS[first + i]
    local c = tonumber(ARGV[pos])
    pos = pos + 1
    local newest, oldest, known = nil, nil, nil
    if replace then
      -- the rebuilt events supersede their stored copies (online/events.py's superseded): a stored
      -- event with a rebuilt identity, or at or before the newest rebuilt event and equal (without
      -- its seq) to a rebuilt event no other stored event matched; pushed events offline lacks stay
      local upto, ids = nil, {}
      for j = 0, c - 1 do
        ids[ARGV[pos + 2 * j]] = true
        local ts = ts_of(ARGV[pos + 2 * j + 1])
        if upto == nil or ts > upto then upto = ts end
      end
      local stored = redis.call('HGETALL', key)
      local held, unmatched = {}, {}
      for j = 1, #stored, 2 do held[stored[j]] = true end
      for j = 0, c - 1 do
        if not held[ARGV[pos + 2 * j]] then
          local k = content(ARGV[pos + 2 * j + 1])
          unmatched[k] = (unmatched[k] or 0) + 1
        end
      end
      newest, oldest = scan_stored(key, stored, function(field, payload, ts)
        if upto == nil or ids[field] then return true end
        if ts > upto then return false end
        local k = content(payload)
        if (unmatched[k] or 0) > 0 then
          unmatched[k] = unmatched[k] - 1
          return true
        end
        return false
      end)
    else
      local meta = redis.call('HGET', key, META)
      if meta then
        known = meta
        local a, b = match(meta, '^(%-?%d+),(%-?%d+)$')
        newest, oldest = tonumber(a), tonumber(b)
      else
        newest, oldest = scan(key, keep)
      end
    end
    -- newest (of the stored events) and oldest are exact; top also counts the new events
    -- (repeats of a stored identity included), and sets the cutoff and the expiry
    local top = newest
    for j = 0, c - 1 do
      local ts = ts_of(ARGV[pos + 2 * j + 1])
      if top == nil or ts > top then top = ts end
    end
    if top == nil then
      redis.call('DEL', key)  -- no event left (a replace with none): not even META
    else
      local cutoff = top - horizon
      if oldest ~= nil and oldest <= cutoff then
        newest, oldest = scan(key, function(field, payload, ts) return ts <= cutoff end)
      end
      for j = 0, c - 1 do
        local payload = ARGV[pos + 2 * j + 1]
        local ts = ts_of(payload)
        if ts > cutoff and redis.call('HSETNX', key, ARGV[pos + 2 * j], payload) == 1 then
          added = added + 1
          if oldest == nil or ts < oldest then oldest = ts end
          if newest == nil or ts > newest then newest = ts end
        end
      end
      if oldest == nil then
        redis.call('DEL', key)
      else
        local now = string.format('%.0f,%.0f', newest, oldest)
        if now ~= known then redis.call('HSET', key, META, now) end
        -- the expiry only moves with a new newest time (a repeat's later time moves it too)
        if known == nil or top > newest or now ~= known then
          redis.call('PEXPIREAT', key, string.format('%.0f', math.ceil((top + horizon) / 1000)))
        end
      end
    end
    pos = pos + 2 * c
  end
  return added, pos
end
"""
APPEND_EVENTS = (
    _APPEND_FUNCTIONS
    + """
local added = append_entities(0, tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3] == '1', 4)
return added
"""
)


APPEND_EVENTS_SHA = hashlib.sha1(APPEND_EVENTS.encode()).hexdigest()

# A push in one call (standalone Redis): APPEND_EVENTS to every live version of a view, guarded
# by the version pointers, and the view's newest-event time. KEYS: the pointers hash, the pending
# hash, the newest-events hash, then the entity hashes of each target version in turn.
# ARGV: view, the current and pending versions the caller expects ('' for none), the batch's
# newest event time (ISO 8601 in UTC, as set_newest_event writes it: such strings order as their
# times do), t targets, then per target: its newest-events field, n, horizon_us and its n
# entities' event blocks (as APPEND_EVENTS). When the pointers are not the expected ones,
# nothing is written and {-1, current, pending} comes back; else {1, added per target}.
# Checking the pointers and appending in one script makes the write land exactly on the
# versions live at that moment (a materialization switching versions carries it forward).
APPEND_LIVE = (
    _APPEND_FUNCTIONS
    + """
local view = ARGV[1]
local cur = redis.call('HGET', KEYS[1], view) or ''
local pend = redis.call('HGET', KEYS[2], view) or ''
if pend == cur then pend = '' end
if cur ~= ARGV[2] or pend ~= ARGV[3] then return {-1, cur, pend} end
local stamp = ARGV[4]
local pos, first, out = 6, 3, {1}
for k = 1, tonumber(ARGV[5]) do
  local field, n, horizon = ARGV[pos], tonumber(ARGV[pos + 1]), tonumber(ARGV[pos + 2])
  local added
  added, pos = append_entities(first, n, horizon, false, pos + 3)
  first = first + n
  if added > 0 then
    local old = redis.call('HGET', KEYS[3], field)
    if not old or old < stamp then redis.call('HSET', KEYS[3], field, stamp) end
  end
  out[#out + 1] = added
end
return out
"""
)


def events_only(values: list[bytes]) -> list[bytes]:
    """An entity hash's values (HVALS) without its META value: the event payloads, JSON arrays."""
    return [v for v in values if v[:1] == b"["]
