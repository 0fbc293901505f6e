"""Settings for the embeddings relay: every value comes from the environment.

Defaults suit a laptop (``python3 dev.py run`` sets DATABASE_URL and REDIS_URL
to embedded servers). ``.env.example`` lists every variable with its meaning.
"""

from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from billing import redis_url
from relay.lib.env import env_bool, env_float, env_int, env_list, env_str, web_concurrency

BASE_DIR = Path(__file__).resolve().parent.parent


def _shipped(name: str) -> Path:
    """A top-level data directory of the tree (templates/, locale/): where it
    is in a checkout or the Docker image, or the copy a wheel carries inside
    the relay package (pyproject.toml maps it to ``relay.shipped.<name>``)."""
    packaged = Path(__file__).resolve().parent / "shipped" / name
    return packaged if packaged.is_dir() else BASE_DIR / name


DEBUG = env_bool("DEBUG", False)
SECRET_KEY = env_str("SECRET_KEY", "dev-only-insecure-secret-key-change-me" if DEBUG else None)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

# Served over HTTPS (directly or behind a TLS-terminating proxy): secure
# cookies, HSTS and redirects. Off by default so the laptop stack works on
# plain http://127.0.0.1; production sets HTTPS=true (and `check --deploy`
# is then clean).
HTTPS = env_bool("HTTPS", False)
SECURE_SSL_REDIRECT = HTTPS
SESSION_COOKIE_SECURE = HTTPS
CSRF_COOKIE_SECURE = HTTPS
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31536000 if HTTPS else 0, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = HTTPS
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", HTTPS)
if env_bool("BEHIND_TLS_PROXY", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# Health checks are probed over plain HTTP from inside the network.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_AGE = env_int("SESSION_COOKIE_AGE", 12 * 3600, minimum=60)
X_FRAME_OPTIONS = "DENY"

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.postgres",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "accounts",
    "billing",
    "relay",
    "console",
]

MIDDLEWARE = [
    "relay.api.middleware.request_id",
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # The consoles' language: the person's stored choice, else the browser's;
    # /v1/, /api/ and the probes always answer in English (console/language.py).
    "console.language.LanguageMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "relay.urls"
LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/accounts/login/"
ASGI_APPLICATION = "relay.asgi.application"
WSGI_APPLICATION = "relay.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [_shipped("templates")],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.i18n",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {
    "default": dj_database_url.parse(
        env_str("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/relay"),
        conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 60, minimum=0),
        conn_health_checks=True,
    )
}
# A streaming replica the consoles' reports may read from (billing/replica.py);
# the money path never does. Unset: reports read the primary.
if env_str("DATABASE_REPLICA_URL", ""):
    DATABASES["replica"] = {
        **dj_database_url.parse(
            env_str("DATABASE_REPLICA_URL", ""),
            conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 60, minimum=0),
            conn_health_checks=True,
        ),
        # Tests read the replica as the primary itself (no second test database).
        "TEST": {"MIRROR": "default"},
    }
DATABASE_ROUTERS = ["billing.replica.PrimaryUnlessAskedRouter"]
REDIS_URL = env_str("REDIS_URL", "redis://127.0.0.1:6379/0")
# The per-item embedding cache's own Redis (relay/pipeline/cache.py), which
# may evict (allkeys-lru, its maxmemory the cache's size cap) where REDIS_URL
# must never: unset, groups with the cache on are served without it.
CACHE_REDIS_URL = env_str("CACHE_REDIS_URL", "")
RELAY_CACHE_TTL_S = env_int("RELAY_CACHE_TTL_S", 7 * 24 * 3600, minimum=1)

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
# The consoles speak English and Simplified Chinese (docs/operator.md,
# "Languages"); the API's messages are OpenAI's English whatever is asked.
LANGUAGE_CODE = "en"
LANGUAGES = [("en", "English"), ("zh-hans", "简体中文")]
# Written in the repo (locale/*/LC_MESSAGES/django.po), compiled to .mo by
# `dev.py run` / `dev.py test` and the Docker build (relay/devtools/locales.py).
LOCALE_PATHS = [_shipped("locale")]
# The switcher's cookie (console/language.py); a signed-in person's choice is
# also kept on their profile.
LANGUAGE_COOKIE_SECURE = HTTPS
LANGUAGE_COOKIE_SAMESITE = "Lax"
TIME_ZONE = env_str("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"

# /v1/ views authenticate relay keys themselves; the operator API under
# /api/ names its own authentication (tokens, sessions) on its views.
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [],
    "DEFAULT_PERMISSION_CLASSES": [],
    "UNAUTHENTICATED_USER": None,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Embeddings relay operator API",
    "DESCRIPTION": "Tenants, groups, channels, keys, balances and usage reports.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # Two models have a "kind" choice; name their enums apart.
    "ENUM_NAME_OVERRIDES": {
        "ChannelKindEnum": "relay.models.KINDS",
        "LedgerEntryKindEnum": "billing.models.LedgerEntry.Kind",
    },
}

# --- The relay's own knobs -------------------------------------------------

# Fernet keys for channel credentials at rest, newest first (see
# relay/lib/credentials.py); separate from SECRET_KEY.
CREDENTIALS_KEYS = env_list("CREDENTIALS_KEYS", [])

# How long an API key or a group's routing table is trusted from the
# in-process cache before the database is asked again: a revoked key, a price
# or a channel change takes effect within this many seconds.
RELAY_CONFIG_CACHE_TTL_S = env_float("RELAY_CONFIG_CACHE_TTL_S", 5.0)
# Upstream timeouts. Connect is short: a dead host should fail over quickly.
RELAY_UPSTREAM_CONNECT_TIMEOUT_S = env_float("RELAY_UPSTREAM_CONNECT_TIMEOUT_S", 5.0)
RELAY_UPSTREAM_READ_TIMEOUT_S = env_float("RELAY_UPSTREAM_READ_TIMEOUT_S", 60.0)
# How many channels one request may try before it answers 502/503.
RELAY_MAX_ATTEMPTS = env_int("RELAY_MAX_ATTEMPTS", 3, minimum=1)

# Channel health (relay/health/, docs/operator.md "Channel health"): this many
# failures of a channel (timeouts, connection errors, 5xx) within the window,
# with no success between them, take it out of rotation; a refused credential
# or an exhausted quota does at once. Counted per process and flushed to
# Redis every RELAY_HEALTH_FLUSH_S, off the request path.
RELAY_HEALTH_FAILURES = env_int("RELAY_HEALTH_FAILURES", 5, minimum=1)
RELAY_HEALTH_WINDOW_S = env_float("RELAY_HEALTH_WINDOW_S", 60.0, minimum=1.0)
RELAY_HEALTH_FLUSH_S = env_float("RELAY_HEALTH_FLUSH_S", 1.0, minimum=0.05)
# The probe of an auto-disabled channel: first after the base delay, then
# doubling after each failed probe, up to the maximum.
RELAY_HEALTH_PROBE_BASE_S = env_float("RELAY_HEALTH_PROBE_BASE_S", 60.0, minimum=1.0)
RELAY_HEALTH_PROBE_MAX_S = env_float("RELAY_HEALTH_PROBE_MAX_S", 3600.0, minimum=1.0)
# The batch engine (relay/pipeline/batch.py): upstream calls one request has
# in flight at once, and calls one process has in flight to one channel.
# 24 sends a full OpenAI batch (2,048 inputs) to a 96- or 100-item provider
# (Cohere, Gemini) in one wave of 22 calls, not 3 (docs/benchmarks.md, issue 14).
RELAY_SHARD_CONCURRENCY = env_int("RELAY_SHARD_CONCURRENCY", 24, minimum=1)
RELAY_CHANNEL_CONCURRENCY = env_int("RELAY_CHANNEL_CONCURRENCY", 64, minimum=1)
# Bodies larger than this are refused before they are parsed (bytes).
RELAY_MAX_BODY_BYTES = env_int("RELAY_MAX_BODY_BYTES", 16 * 1024 * 1024, minimum=1024)
# The connection edge (relay/server/edge.py, docs/deploy.md): how long a client
# may take to send a request's head, then its body, and how many connections
# one web process holds (under its file-descriptor limit, with room for the
# upstream and database connections).
RELAY_HEADER_TIMEOUT_S = env_float("RELAY_HEADER_TIMEOUT_S", 10.0, minimum=0.1)
RELAY_BODY_TIMEOUT_S = env_float("RELAY_BODY_TIMEOUT_S", 60.0, minimum=0.1)
RELAY_MAX_CONNECTIONS_PER_PROCESS = env_int("RELAY_MAX_CONNECTIONS_PER_PROCESS", 4096, minimum=1)
DATA_UPLOAD_MAX_MEMORY_SIZE = RELAY_MAX_BODY_BYTES
# A hold (money reserved for a request in flight) is released by the
# sweeper after this long: longer than any request with all its failovers.
RELAY_HOLD_TTL_S = env_int("RELAY_HOLD_TTL_S", 300, minimum=10)
# The operator's currency, for display; amounts are nano-units of it.
CURRENCY = env_str("CURRENCY", "USD")
# Private/loopback/link-local ranges channels may reach (CIDRs, e.g. a local
# model server); public addresses are always allowed, metadata never.
RELAY_UPSTREAM_ALLOWED_NETWORKS = env_list("RELAY_UPSTREAM_ALLOWED_NETWORKS", [])
# Answers larger than this (bytes) are passed to the client as they arrive
# instead of being held whole: chunked, their last 16 KiB held back until the
# upstream is done (relay/pipeline/streaming.py). Smaller ones keep their
# Content-Length and fail over if the upstream breaks off midway.
RELAY_STREAM_FROM_BYTES = env_int("RELAY_STREAM_FROM_BYTES", 1024 * 1024, minimum=32 * 1024)
# Bytes of upstream answers one web process lets in at once; past it,
# requests wait their turn before calling the upstream (relay/pipeline/answer_budget.py).
RELAY_ANSWER_BUDGET_BYTES = env_int(
    "RELAY_ANSWER_BUDGET_BYTES", 32 * 1024 * 1024, minimum=1024 * 1024
)
# How often a web process hands freed heap memory back to the system
# (relay/server/heap.py); 0 turns it off.
RELAY_HEAP_TRIM_S = env_float("RELAY_HEAP_TRIM_S", 5.0)
# Upstream connections kept open per web process (aiohttp pool size).
RELAY_UPSTREAM_POOL_SIZE = env_int("RELAY_UPSTREAM_POOL_SIZE", 1000, minimum=1)
# An in-flight slot left by a dead process frees itself after this; keep it above any request.
RELAY_INFLIGHT_SLOT_TTL_S = env_int("RELAY_INFLIGHT_SLOT_TTL_S", 300, minimum=1)
# Redis replicates asynchronously: a primary that dies may take its last
# settles with it (the money taken and the usage event). With replicas, a
# settle is followed by WAIT for this many replicas; one not confirmed within
# the timeout is also billed straight into PostgreSQL, which keeps it exactly
# once (docs/deploy.md, "Redis"). 0: no WAIT (one server, no failover).
RELAY_REDIS_WAIT_REPLICAS = env_int("RELAY_REDIS_WAIT_REPLICAS", 0, minimum=0)
RELAY_REDIS_WAIT_TIMEOUT_MS = env_int("RELAY_REDIS_WAIT_TIMEOUT_MS", 100, minimum=1)
# Proxies (CIDRs) whose X-Forwarded-For is believed; empty: the peer address is the client.
RELAY_TRUSTED_PROXIES = env_list("RELAY_TRUSTED_PROXIES", [])
# The web processes on this machine (gunicorn reads the same: relay/lib/env.py).
WEB_CONCURRENCY = web_concurrency()
# With Redis down each web process enforces 1/N of every limit (N: the web processes).
RELAY_FALLBACK_PROCESSES = env_int("RELAY_FALLBACK_PROCESSES", WEB_CONCURRENCY, minimum=1)
# Invalid API keys one address may send per minute before its unknown keys get 429.
RELAY_INVALID_KEY_LIMIT_PER_MIN = env_int("RELAY_INVALID_KEY_LIMIT_PER_MIN", 20, minimum=1)
# Redemption codes that did not work, per person and per address, before further
# attempts are refused for the rest of the window (console/redemption.py).
REDEMPTION_ATTEMPTS_PER_USER = env_int("REDEMPTION_ATTEMPTS_PER_USER", 10, minimum=1)
REDEMPTION_ATTEMPTS_PER_ADDRESS = env_int("REDEMPTION_ATTEMPTS_PER_ADDRESS", 30, minimum=1)
REDEMPTION_THROTTLE_WINDOW_S = env_int("REDEMPTION_THROTTLE_WINDOW_S", 900, minimum=1)

# Where usage events wait for a worker (a Redis stream), and how many a
# worker writes in one transaction.
USAGE_STREAM = env_str("USAGE_STREAM", "usage:events")
# The stream is split into this many (and tenants' state into as many Redis
# hash tags, billing/shards.py), so a Redis Cluster spreads them over its
# shards. Change it only with every stream drained (docs/deploy.md).
USAGE_STREAM_SHARDS = env_int("USAGE_STREAM_SHARDS", 16, minimum=1)
USAGE_BATCH_SIZE = env_int("USAGE_BATCH_SIZE", 500, minimum=1)
# A usage event claimed by a worker that died is handed to another after this.
# Short, so a killed worker delays records by seconds, not a minute; a batch
# takes far less to write, and a second writer of one batch writes nothing
# twice (records are keyed by request id).
USAGE_CLAIM_IDLE_S = env_int("USAGE_CLAIM_IDLE_S", 10, minimum=1)
# An event still unwritten this long after it was queued is overdue:
# `manage.py reconcile` names it and exits 1 (docs/operator.md).
USAGE_PENDING_BOUND_S = env_int("USAGE_PENDING_BOUND_S", 60, minimum=1)

# --- Notifications ----------------------------------------------------------

# E-mail through Django's mail settings (relay/notices/, docs/operator.md
# "Notifications"). The console backend prints mails on a laptop.
EMAIL_BACKEND = env_str("EMAIL_BACKEND", "django.core.mail.backends.smtp.EmailBackend")
EMAIL_HOST = env_str("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25, minimum=1)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
EMAIL_TIMEOUT = env_int("EMAIL_TIMEOUT", 10, minimum=1)
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "relay@localhost")
# Who hears of channels taken out of rotation and put back: these addresses,
# or, when empty, every active staff user with an e-mail address.
RELAY_NOTIFY_EMAILS = env_list("RELAY_NOTIFY_EMAILS", [])
# The same events POSTed as JSON to this URL, signed with HMAC-SHA256 under
# the secret (X-Relay-Signature); a URL without a secret is refused.
RELAY_NOTIFY_WEBHOOK_URL = env_str("RELAY_NOTIFY_WEBHOOK_URL", "")
RELAY_NOTIFY_WEBHOOK_SECRET = env_str("RELAY_NOTIFY_WEBHOOK_SECRET", "")
if RELAY_NOTIFY_WEBHOOK_URL and not RELAY_NOTIFY_WEBHOOK_SECRET:
    raise ImproperlyConfigured("RELAY_NOTIFY_WEBHOOK_URL needs RELAY_NOTIFY_WEBHOOK_SECRET.")
# Days before a key expires that its tenant's owners are told, once each.
RELAY_KEY_EXPIRY_NOTICE_DAYS = sorted(
    {
        env_int("RELAY_KEY_EXPIRY_NOTICE_DAYS_FIRST", 7, minimum=1),
        env_int("RELAY_KEY_EXPIRY_NOTICE_DAYS_LAST", 1, minimum=1),
    },
    reverse=True,
)

# --- Celery -----------------------------------------------------------------

# Celery's broker keeps its own URL. It defaults to REDIS_URL when that names
# one server; a cluster cannot be a broker, and a Sentinel URL is spelled
# differently for kombu (sentinel://host:26379;sentinel://... with
# broker_transport_options' master_name), so those need CELERY_BROKER_URL.
CELERY_BROKER_URL = env_str(
    "CELERY_BROKER_URL", REDIS_URL if redis_url.is_standalone(REDIS_URL) else ""
)
if not CELERY_BROKER_URL:
    raise ImproperlyConfigured(
        "REDIS_URL names a Redis Cluster or Sentinel: set CELERY_BROKER_URL to the broker's "
        "own URL (docs/deploy.md, Redis)"
    )
CELERY_TASK_IGNORE_RESULT = True
CELERY_RESULT_BACKEND = None
# At-least-once: a task is acknowledged only after it ran, and a task whose
# worker process died is requeued rather than acknowledged. Tasks are
# idempotent (usage is keyed by request id), so a repeat is harmless.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
# One message at a time per process: a killed worker strands at most one.
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# The tasks wait on PostgreSQL and Redis, not the CPU: they run in threads of
# the worker process rather than in forked children (each ~20 MB of Django of
# its own). relay/celery.py enforces CELERY_TASK_TIME_LIMIT for them (the soft
# limit is not raised in a thread). Celery's CLI takes "--pool prefork" for
# "no --pool given" and uses this; another pool is chosen by name.
CELERY_WORKER_POOL = "threads"
CELERY_TASK_TIME_LIMIT = 300
CELERY_TASK_SOFT_TIME_LIMIT = 240
# Longer than any task's time limit, so a running task is never redelivered
# to a second worker while the first still works on it.
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 900}
CELERY_BEAT_SCHEDULE = {
    "drain-usage-events": {
        "task": "billing.tasks.drain_usage_events",
        "schedule": env_float("USAGE_DRAIN_INTERVAL_S", 1.0, minimum=0.1),
        # A drain that could not run within a few intervals is superseded by
        # the next one; there is no point queueing them up.
        "options": {"expires": 10},
    },
    "sweep-expired-holds": {
        "task": "billing.tasks.sweep_expired_holds",
        "schedule": 15.0,
        "options": {"expires": 60},
    },
    "apply-pending-ledger": {
        "task": "billing.tasks.apply_pending_ledger",
        "schedule": 10.0,
        "options": {"expires": 60},
    },
    # Channel health (relay/health/tasks.py): tripped channels out of
    # rotation, and the due probes of those taken out.
    "apply-channel-trips": {
        "task": "relay.health.tasks.apply_trips",
        "schedule": env_float("RELAY_HEALTH_APPLY_INTERVAL_S", 2.0, minimum=0.1),
        "options": {"expires": 10},
    },
    "probe-disabled-channels": {
        "task": "relay.health.tasks.probe_due",
        "schedule": env_float("RELAY_HEALTH_PROBE_INTERVAL_S", 15.0, minimum=0.1),
        "options": {"expires": 60},
    },
    # Tenants' notices (relay/notices/tasks.py).
    "low-balance-notices": {
        "task": "relay.notices.tasks.low_balances",
        "schedule": 60.0,
        "options": {"expires": 120},
    },
    "key-expiry-notices": {
        "task": "relay.notices.tasks.expiring_keys",
        "schedule": 600.0,
        "options": {"expires": 1200},
    },
    # Usage records' monthly partitions, three months ahead (billing/partitions.py).
    "create-usage-partitions": {
        "task": "billing.tasks.create_usage_partitions",
        "schedule": 6 * 3600.0,
        "options": {"expires": 3600},
    },
}

# JSON lines by default (one object per line, for log shippers); "plain"
# for reading on a terminal.
LOG_FORMAT = env_str("LOG_FORMAT", "json")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "json": {"()": "relay.lib.jsonlog.JSONFormatter"},
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "plain" if LOG_FORMAT == "plain" else "json",
        }
    },
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {"django.request": {"level": "ERROR"}},
}

# /metrics answers requests bearing this token; without one, only requests
# from the machine itself (a local Prometheus or a sidecar).
METRICS_TOKEN = env_str("METRICS_TOKEN", "")
