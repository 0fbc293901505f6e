"""The Redis scripts behind relay/limits.py.

Each decision is one script, so it is atomic across every web process: no
other request can run between reading a limit's state and recording the
admission (a read-then-increment counter over-admits under concurrency).

Rates are GCRA in its leaky-bucket form, with the state scaled so all the
arithmetic is exact integers (Lua numbers are doubles, exact below 2**53):
a bucket's level is "units used x PERIOD_US" and drains by ``limit`` per
microsecond, so a full minute drains ``limit x PERIOD_US``, the capacity.
A request of ``cost`` units fits when ``level + cost x PERIOD_US <=
limit x PERIOD_US``: a burst of ``limit`` at once, then one unit every
PERIOD_US / limit. Exact up to a limit of ~150 million per minute.
``relay.gcra.LocalLimiter`` is the same arithmetic in Python.

Numbers written back are formatted with '%.0f': Redis turns a Lua number
argument into a string with 14 significant digits, which would round a
microsecond timestamp.
"""

# KEYS: 1 the key's buckets (hash), 2 the tenant's buckets (hash),
#       3 the key's in-flight slots (zset), 4 the tenant's in-flight slots (zset)
# ARGV: 1 cost in tokens,
#       2-7 limits: key RPM, key TPM, tenant RPM, tenant TPM, key in-flight,
#           tenant in-flight (-1: no such limit),
#       8 slot id, 9 slot lifetime in microseconds
# A hash holds fields r/rt (request level, its timestamp) and t/tt (tokens).
# Returns {refused, used, retry_us, key RPM remaining, key RPM reset_us,
#          key TPM remaining, key TPM reset_us}: refused is 0 when admitted,
#          else the 1-based index of the limit reported; retry_us is -1 when
#          the request can never fit that limit.
ADMIT = """
local PERIOD = 60000000
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local tokens = tonumber(ARGV[1])
local limit = {}
for i = 1, 6 do limit[i] = tonumber(ARGV[i + 1]) end
local cost = {1, tokens, 1, tokens}
local hash = {KEYS[1], KEYS[2]}
local field = {'r', 't'}

-- Drain each limited bucket up to now.
local level = {0, 0, 0, 0}
for h = 1, 2 do
  local i = 2 * h - 1
  if limit[i] >= 0 or limit[i + 1] >= 0 then
    local s = redis.call('HMGET', hash[h], 'r', 'rt', 't', 'tt')
    for j = 0, 1 do
      local lv = tonumber(s[2 * j + 1])
      if lv and limit[i + j] >= 0 then
        local drained = (now - tonumber(s[2 * j + 2])) * limit[i + j]
        if drained > 0 then lv = lv - drained end
        if lv < 0 then lv = 0 end
        level[i + j] = lv
      end
    end
  end
end

-- Every rate must pass. Report the one that makes the client wait longest
-- (a request that can never fit beats all), so one retry after it can pass.
local refused, used, retry = 0, 0, 0
for i = 1, 4 do
  local lim = limit[i]
  if lim >= 0 then
    local over = level[i] + (cost[i] - lim) * PERIOD
    if over > 0 then
      local wait = -1
      if cost[i] <= lim then wait = math.ceil(over / lim) end
      if refused == 0 or (retry >= 0 and (wait < 0 or wait > retry)) then
        refused, used, retry = i, math.ceil(level[i] / PERIOD), wait
      end
    end
  end
end

-- In flight: slots scored by their expiry, so a dead process's slots vanish.
local slots = {KEYS[3], KEYS[4]}
if refused == 0 then
  for s = 1, 2 do
    local lim = limit[4 + s]
    if lim >= 0 then
      redis.call('ZREMRANGEBYSCORE', slots[s], '-inf', now)
      local count = redis.call('ZCARD', slots[s])
      if refused == 0 and count >= lim then refused, used = 4 + s, count end
    end
  end
end

local taken = 0
if refused == 0 then taken = 1 end

-- The key's own rates, for the x-ratelimit-* headers.
local function remaining_and_reset(i)
  local lim = limit[i]
  if lim <= 0 then return 0, 0 end
  local lv = level[i] + taken * cost[i] * PERIOD
  local left = math.floor((lim * PERIOD - lv) / PERIOD)
  if left < 0 then left = 0 end
  return left, math.ceil(lv / lim)
end
local r_left, r_reset = remaining_and_reset(1)
local t_left, t_reset = remaining_and_reset(2)
if refused ~= 0 then
  return {refused, used, retry, r_left, r_reset, t_left, t_reset}
end

-- Admitted: record every limit.
local nowstr = string.format('%.0f', now)
for h = 1, 2 do
  local expire_ms = -1
  for j = 0, 1 do
    local i = 2 * h - 1 + j
    if limit[i] >= 0 then
      local lv = level[i] + cost[i] * PERIOD
      redis.call('HSET', hash[h], field[j + 1], string.format('%.0f', lv), field[j + 1] .. 't',
        nowstr)
      local ms = 0
      if limit[i] > 0 then ms = math.ceil(lv / limit[i] / 1000) end
      if ms > expire_ms then expire_ms = ms end
    end
  end
  -- An empty bucket and a missing one are the same: let Redis drop it.
  if expire_ms >= 0 then redis.call('PEXPIRE', hash[h], expire_ms + 1000) end
end
local ttl = tonumber(ARGV[9])
for s = 1, 2 do
  if limit[4 + s] >= 0 then
    redis.call('ZADD', slots[s], string.format('%.0f', now + ttl), ARGV[8])
    redis.call('PEXPIRE', slots[s], math.ceil(ttl / 1000))
  end
end
return {0, 0, 0, r_left, r_reset, t_left, t_reset}
"""

# KEYS: the in-flight slot sets the request holds a slot in; ARGV[1]: the slot id.
RELEASE = """
for i = 1, #KEYS do redis.call('ZREM', KEYS[i], ARGV[1]) end
return 0
"""

# A fixed one-minute window of invalid keys from one address.
# KEYS[1]: the address's counter; ARGV[1]: window in ms; ARGV[2]: 1 to count
# one more, 0 to only read. Returns {count, ms left in the window}.
INVALID_KEY = """
local n
if ARGV[2] == '1' then
  n = redis.call('INCR', KEYS[1])
  if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
else
  n = tonumber(redis.call('GET', KEYS[1]) or '0')
end
return {n, redis.call('PTTL', KEYS[1])}
"""
