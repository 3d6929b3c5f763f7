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
