"""The live balance: a copy of each tenant's balance in Redis that requests
reserve and spend against atomically.

Why Redis and not a PostgreSQL row: every request reserves money before its
upstream call and spends it after, and a relay serves thousands a second;
two row-locking round trips per request through PostgreSQL would serialise
a busy tenant and cost more than the rest of the request path. Each step
runs inside one Lua script (on the request path, the same script as the rate
limiter's: relay/pipeline/gate.py), so "check the balance, then take from it" can
never interleave with another request's (the race that lets new-api
overdraw).

Keys, each under the tenant's hash tag T (billing/shards.py), so that one
script can touch them all on one Redis Cluster shard:
    live:T:tenant:{id}   hash  balance (nanos), held (sum of open holds)
    live:T:key:{id}      hash  spent, held: for keys with a spend cap
    live:T:holds         zset  member "request_id|tenant|key|amount|capped",
                               score = when the hold expires (ms); one per tag
    live:T:applied:{id}  string, a ledger entry already in the live balance

PostgreSQL stays the book of record: the ledger (billing.models.LedgerEntry)
and the per-tenant Balance row. Usage debits reach it through the usage
stream; every other entry (top-ups, adjustments, refunds, debits written
while Redis was unreachable) is written there first and then applied here,
once, marked by ``live:applied:{id}``.
"""

from __future__ import annotations

from billing import shards

APPLIED_TTL_S = 90 * 24 * 3600


def tenant_key(tenant_id: int) -> str:
    return f"live:{shards.tag(tenant_id)}:tenant:{tenant_id}"


def key_key(tenant_id: int, api_key_id: int) -> str:
    return f"live:{shards.tag(tenant_id)}:key:{api_key_id}"


def holds_key(tenant_id: int) -> str:
    """The open holds of every tenant that shares this one's hash tag."""
    return f"live:{shards.tag(tenant_id)}:holds"


def all_hold_sets() -> list[tuple[str, str]]:
    """(hold set, key prefix of its tag) for every tag, for the sweeper."""
    return [(f"live:{tag}:holds", f"live:{tag}:") for tag in shards.all_tags()]


def applied_key(tenant_id: int, entry_id: int, request_id: str = "") -> str:
    """The marker saying a ledger entry is in the live balance. A debit for
    one request is marked by the request id, which the settle script also
    sets: if Redis ran the settle but its reply was lost (and the request
    was billed into PostgreSQL instead), the debit is not taken twice."""
    prefix = f"live:{shards.tag(tenant_id)}:applied"
    return f"{prefix}:req:{request_id}" if request_id else f"{prefix}:{entry_id}"


def hold_member(request_id: str, tenant_id: int, api_key_id: int, amount: int, capped: bool) -> str:
    return f"{request_id}|{tenant_id}|{api_key_id}|{amount}|{int(capped)}"


# The request's money steps as Lua functions, so relay/pipeline/gate.py can run them
# in the same script as the rate limiter (one round trip each way), and the
# scripts below can run them alone.
#
# hold_check(K, A) decides whether ARGV[1] nanos can be reserved, changing
# nothing; hold_place(K, A) reserves them. K: tenant hash, key hash, holds
# zset. A: amount, cap (-1 = none), member, hold expiry (ms), the key's own
# expiry (ms, -1 = none). hold_check returns 1 can hold, 0 balance too low,
# -3 key cap reached, -4 key expired (on Redis's clock, in the same step as
# the cap), -1 tenant not loaded, -2 key not loaded.
#
# hold_settle(K, A) releases a hold and spends what the request cost, and
# queues its usage event, in one step: the money taken and the event that
# will bill it in PostgreSQL can never be separated. K: tenant hash, key
# hash, holds zset, stream, the request's applied marker. A: member, held
# amount, billed amount, capped (0/1), event json, event field, charge
# field, marker TTL. Returns the amount charged: the billed amount, or less
# when an upstream reported more tokens than we reserved for and the
# balance cannot cover the difference (the balance never goes below zero).
#
# hold_release(K, A) gives a hold back without spending. K: tenant, key,
# holds. A: member, amount, capped. Returns 1, or 0 if it was already gone.
FUNCTIONS = """
local function hold_check(K, A)
  local key_expires = tonumber(A[5])
  if key_expires >= 0 then
    local now = redis.call('TIME')
    if tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000) >= key_expires then
      return -4
    end
  end
  if redis.call('EXISTS', K[1]) == 0 then return -1 end
  local amount = tonumber(A[1])
  local cap = tonumber(A[2])
  if cap >= 0 and redis.call('EXISTS', K[2]) == 0 then return -2 end
  local t = redis.call('HMGET', K[1], 'balance', 'held')
  if tonumber(t[1]) - tonumber(t[2] or 0) < amount then return 0 end
  if cap >= 0 then
    local k = redis.call('HMGET', K[2], 'spent', 'held')
    if tonumber(k[1]) + tonumber(k[2] or 0) + amount > cap then return -3 end
  end
  return 1
end

local function hold_place(K, A)
  if tonumber(A[2]) >= 0 then redis.call('HINCRBY', K[2], 'held', A[1]) end
  redis.call('HINCRBY', K[1], 'held', A[1])
  redis.call('ZADD', K[3], A[4], A[3])
end

local function hold_settle(K, A)
  local held = tonumber(A[2])
  if redis.call('ZREM', K[3], A[1]) == 0 then held = 0 end
  local billed = tonumber(A[3])
  redis.call('HINCRBY', K[1], 'held', -held)
  local t = redis.call('HMGET', K[1], 'balance', 'held')
  local free = tonumber(t[1]) - tonumber(t[2] or 0)
  local charge = billed
  if charge > free then charge = math.max(free, 0) end
  redis.call('HINCRBY', K[1], 'balance', -charge)
  if A[4] == '1' then
    redis.call('HINCRBY', K[2], 'held', -held)
    redis.call('HINCRBY', K[2], 'spent', charge)
  end
  redis.call('XADD', K[4], '*', A[6], A[5], A[7], charge)
  redis.call('SET', K[5], 1, 'EX', A[8])
  return charge
end

local function hold_release(K, A)
  if redis.call('ZREM', K[3], A[1]) == 0 then return 0 end
  redis.call('HINCRBY', K[1], 'held', -tonumber(A[2]))
  if A[3] == '1' then redis.call('HINCRBY', K[2], 'held', -tonumber(A[2])) end
  return 1
end
"""

# A hold alone (tests and tools place holds with it). KEYS and ARGV as K
# and A of hold_check; returns hold_check's code.
HOLD = (
    FUNCTIONS
    + """
local result = hold_check(KEYS, ARGV)
if result == 1 then hold_place(KEYS, ARGV) end
return result
"""
)

# Load a tenant's live balance from PostgreSQL, unless another process did.
# KEYS: tenant hash. ARGV: balance, then the applied markers of ledger
# entries the balance already includes but that were not yet applied live.
LOAD_TENANT = f"""
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'balance', ARGV[1], 'held', 0)
for i = 2, #ARGV do
  redis.call('SET', ARGV[i], 1, 'EX', {APPLIED_TTL_S})
end
return 1
"""

# KEYS: key hash. ARGV: spent.
LOAD_KEY = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'spent', ARGV[1], 'held', 0)
return 1
"""

# Apply one ledger entry to the live balance, once.
# KEYS: applied marker, tenant hash. ARGV: amount (signed).
# Returns 1 when the live balance includes it (now or before), 0 when the
# tenant is not loaded (the next load reads it from PostgreSQL).
APPLY_ENTRY = f"""
if redis.call('EXISTS', KEYS[1]) == 1 then return 1 end
if redis.call('EXISTS', KEYS[2]) == 0 then return 0 end
redis.call('HINCRBY', KEYS[2], 'balance', ARGV[1])
redis.call('SET', KEYS[1], 1, 'EX', {APPLIED_TTL_S})
return 1
"""

# Release holds whose request vanished (its process was killed).
# KEYS: holds zset. ARGV: now_ms, max count, the key prefix of the set's tag
# (the balances it names share the tag, so the same slot). Returns how many
# were released.
SWEEP = """
local expired = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
for _, member in ipairs(expired) do
  local rid, tenant, key, amount, capped = string.match(member, '^(.*)|(%d+)|(%d+)|(%d+)|(%d)$')
  redis.call('HINCRBY', ARGV[3] .. 'tenant:' .. tenant, 'held', -tonumber(amount))
  if capped == '1' then
    redis.call('HINCRBY', ARGV[3] .. 'key:' .. key, 'held', -tonumber(amount))
  end
  redis.call('ZREM', KEYS[1], member)
end
return #expired
"""
