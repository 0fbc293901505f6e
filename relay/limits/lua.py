"""The Redis scripts behind relay/limits/rules.py.

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
``relay.limits.gcra.LocalLimiter`` is the same arithmetic in Python.

Numbers written back are formatted with '%.0f': Redis turns a Lua number
argument into a string with 14 significant digits, which would round a
microsecond timestamp.
"""

# The limiter as Lua functions, so relay/pipeline/gate.py can run it in the same
# script as the money hold (one round trip), and ADMIT can run it alone.
#
# limits_decide(K, A) reads every limit and decides; it records nothing
# (beyond dropping expired in-flight slots). limits_record(d) records an
# admitted decision. limits_reply(d) is what the script returns.
# K: 1 the key's buckets (hash), 2 the tenant's buckets (hash),
#    3 the key's in-flight slots (zset), 4 the tenant's in-flight slots (zset)
# A: 1 cost in tokens,
#    2-7 limits: key RPM, key TPM, tenant RPM, tenant TPM, key in-flight,
#        tenant in-flight (-1: no such limit),
#    8 slot id, 9 slot lifetime in microseconds
# A hash holds fields r/rt (request level, its timestamp) and t/tt (tokens).
# The reply is {refused, used, retry_us, key RPM remaining, key RPM reset_us,
#   key TPM remaining, key TPM reset_us}: refused is 0 when admitted, else the
#   1-based index of the limit reported; retry_us is -1 when the request can
#   never fit that limit.
FUNCTIONS = """
local PERIOD = 60000000

local function limits_decide(K, A)
  local clock = redis.call('TIME')
  local d = {K = K, slot_id = A[8], ttl = tonumber(A[9])}
  d.now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
  local tokens = tonumber(A[1])
  local limit = {}
  for i = 1, 6 do limit[i] = tonumber(A[i + 1]) end
  d.limit, d.cost = limit, {1, tokens, 1, tokens}

  -- Drain each limited bucket up to now.
  local level = {0, 0, 0, 0}
  for h = 1, 2 do
    local i = 2 * h - 1
    if limit[i] >= 0 or limit[i + 1] >= 0 then
      local s = redis.call('HMGET', K[h], 'r', 'rt', 't', 'tt')
      for j = 0, 1 do
        local lv = tonumber(s[2 * j + 1])
        if lv and limit[i + j] >= 0 then
          local drained = (d.now - tonumber(s[2 * j + 2])) * limit[i + j]
          if drained > 0 then lv = lv - drained end
          if lv < 0 then lv = 0 end
          level[i + j] = lv
        end
      end
    end
  end
  d.level = level

  -- Every rate must pass. Report the one that makes the client wait longest
  -- (a request that can never fit beats all), so one retry after it can pass.
  local refused, used, retry = 0, 0, 0
  for i = 1, 4 do
    local lim = limit[i]
    if lim >= 0 then
      local over = level[i] + (d.cost[i] - lim) * PERIOD
      if over > 0 then
        local wait = -1
        if d.cost[i] <= lim then wait = math.ceil(over / lim) end
        if refused == 0 or (retry >= 0 and (wait < 0 or wait > retry)) then
          refused, used, retry = i, math.ceil(level[i] / PERIOD), wait
        end
      end
    end
  end

  -- In flight: slots scored by their expiry, so a dead process's slots vanish.
  if refused == 0 then
    for s = 1, 2 do
      local lim = limit[4 + s]
      if lim >= 0 then
        redis.call('ZREMRANGEBYSCORE', K[2 + s], '-inf', d.now)
        local count = redis.call('ZCARD', K[2 + s])
        if refused == 0 and count >= lim then refused, used = 4 + s, count end
      end
    end
  end
  d.refused, d.used, d.retry = refused, used, retry
  return d
end

-- The key's own rates, for the x-ratelimit-* headers.
local function limits_reply(d)
  local taken = 0
  if d.refused == 0 then taken = 1 end
  local reply = {d.refused, d.used, d.retry}
  for i = 1, 2 do
    local lim = d.limit[i]
    local left, reset = 0, 0
    if lim > 0 then
      local lv = d.level[i] + taken * d.cost[i] * PERIOD
      left = math.floor((lim * PERIOD - lv) / PERIOD)
      if left < 0 then left = 0 end
      reset = math.ceil(lv / lim)
    end
    reply[2 + 2 * i], reply[3 + 2 * i] = left, reset
  end
  return reply
end

local function limits_record(d)
  local K, limit = d.K, d.limit
  local nowstr = string.format('%.0f', d.now)
  local field = {'r', 't'}
  for h = 1, 2 do
    local expire_ms = -1
    for j = 0, 1 do
      local i = 2 * h - 1 + j
      if limit[i] >= 0 then
        local lv = d.level[i] + d.cost[i] * PERIOD
        redis.call('HSET', K[h], field[j + 1], string.format('%.0f', lv), field[j + 1] .. 't',
          nowstr)
        local ms = 0
        if limit[i] > 0 then ms = math.ceil(lv / limit[i] / 1000) end
        if ms > expire_ms then expire_ms = ms end
      end
    end
    -- An empty bucket and a missing one are the same: let Redis drop it.
    if expire_ms >= 0 then redis.call('PEXPIRE', K[h], expire_ms + 1000) end
  end
  for s = 1, 2 do
    if limit[4 + s] >= 0 then
      redis.call('ZADD', K[2 + s], string.format('%.0f', d.now + d.ttl), d.slot_id)
      redis.call('PEXPIRE', K[2 + s], math.ceil(d.ttl / 1000))
    end
  end
end

-- Free a request's in-flight slots: K lists the sets it holds one in.
local function limits_free(K, slot_id)
  for i = 1, #K do redis.call('ZREM', K[i], slot_id) end
end
"""

# One decision, alone. KEYS and ARGV as K and A above.
ADMIT = (
    FUNCTIONS
    + """
local d = limits_decide(KEYS, ARGV)
if d.refused == 0 then limits_record(d) end
return limits_reply(d)
"""
)

# KEYS: the in-flight slot sets the request holds a slot in; ARGV[1]: the slot id.
RELEASE = (
    FUNCTIONS
    + """
limits_free(KEYS, ARGV[1])
return 0
"""
)

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
