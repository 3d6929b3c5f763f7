"""Server-side Redis scripts: the newest-row-wins compare-and-write, one call per batch."""

from __future__ import annotations

import hashlib

__all__ = ["PUT_NEWER", "PUT_NEWER_SHA"]

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
# ([event_ts_us, created_us, seq, v1, ..., vN]; only its first number is read here).
# KEYS: the batch's entity hashes. ARGV: n, horizon_us, replace (1/0), then per entity its
# event count c and c (identity, payload) pairs. Per entity: HSETNX the new events newer
# than (newest - horizon) (an identity already there is not added again), delete the older
# ones, and expire the hash when its newest event leaves the longest window. Returns events added.
APPEND_EVENTS = """
local n = tonumber(ARGV[1])
local horizon = tonumber(ARGV[2])
local replace = ARGV[3] == '1'
local match = string.match
local pos = 4
local added = 0
for i = 1, n do
  local key = KEYS[i]
  local c = tonumber(ARGV[pos])
  pos = pos + 1
  if replace then
    -- the rebuilt events supersede the stored ones up to the newest of them; later ones stay
    -- (and a rebuilt event id replaces the stored event of that id)
    local upto = nil
    local rebuilt = {}
    for j = 0, c - 1 do
      rebuilt[ARGV[pos + 2 * j]] = true
      local ts = tonumber(match(ARGV[pos + 2 * j + 1], '^%[(%-?%d+)'))
      if upto == nil or ts > upto then upto = ts end
    end
    local old = redis.call('HGETALL', key)
    local doomed = {}
    for j = 2, #old, 2 do
      if upto == nil or rebuilt[old[j - 1]] or tonumber(match(old[j], '^%[(%-?%d+)')) <= upto then
        doomed[#doomed + 1] = old[j - 1]
        if #doomed == 1000 then
          redis.call('HDEL', key, unpack(doomed))
          doomed = {}
        end
      end
    end
    if #doomed > 0 then redis.call('HDEL', key, unpack(doomed)) end
  end
  local stored = redis.call('HGETALL', key)
  local newest = nil
  local times = {}
  for j = 2, #stored, 2 do
    local ts = tonumber(match(stored[j], '^%[(%-?%d+)'))
    times[j] = ts
    if newest == nil or ts > newest then newest = ts end
  end
  for j = 0, c - 1 do
    local ts = tonumber(match(ARGV[pos + 2 * j + 1], '^%[(%-?%d+)'))
    if newest == nil or ts > newest then newest = ts end
  end
  if newest ~= nil then
    local cutoff = newest - horizon
    for j = 0, c - 1 do
      local payload = ARGV[pos + 2 * j + 1]
      if tonumber(match(payload, '^%[(%-?%d+)')) > cutoff then
        added = added + redis.call('HSETNX', key, ARGV[pos + 2 * j], payload)
      end
    end
    local doomed = {}
    for j = 2, #stored, 2 do
      if times[j] <= cutoff then
        doomed[#doomed + 1] = stored[j - 1]
        if #doomed == 1000 then
          redis.call('HDEL', key, unpack(doomed))
          doomed = {}
        end
      end
    end
    if #doomed > 0 then redis.call('HDEL', key, unpack(doomed)) end
    if redis.call('EXISTS', key) == 1 then
      redis.call('PEXPIREAT', key, string.format('%.0f', math.ceil((newest + horizon) / 1000)))
    end
  end
  pos = pos + 2 * c
end
return added
"""
