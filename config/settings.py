"""One settings module, driven by environment variables.

Unset, every value gives the embedded default (SQLite, files under DATA_DIR, a
Celery broker on the local disk). Set, they give production (PostgreSQL, Redis,
S3-compatible object storage). Nothing here touches the disk or the network.
"""

from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parent.parent
env = environ.Env()

DATA_DIR = Path(env.str("DATA_DIR", default=str(BASE_DIR / "data"))).resolve()
DEBUG = env.bool("DEBUG", default=False)
EMBEDDED = not env.str("DATABASE_URL", default="")

# A missing production secret is a system-check error (config.checks), never a silent default.
MISSING_SECRET_KEY = "missing-secret-key-set-SECRET_KEY"
SECRET_KEY = env.str("SECRET_KEY", default="embedded-default-insecure-key" if EMBEDDED else MISSING_SECRET_KEY)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "django_filters",
    "drf_spectacular",
    "allauth",
    "allauth.account",
    "config",
    "tagging",
    "imagery",
]

MIDDLEWARE = [
    "config.api_lane.TokenApiLane",  # API requests with a token take TOKEN_API_MIDDLEWARE instead of what follows
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "allauth.account.middleware.AccountMiddleware",
]
TOKEN_API_MIDDLEWARE = [  # config/api_lane.py: no sessions, CSRF, messages, framing or allauth for token clients
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "config" / "templates"],
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

DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{DATA_DIR / 'db.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Writers are serialized by SQLite anyway; BEGIN IMMEDIATE makes them queue instead of
    # failing with "database is locked" when a read transaction later wants to write.
    DATABASES["default"]["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": 30,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
    # A file, not memory, so that a real worker process can share the test database.
    DATABASES["default"]["TEST"] = {"NAME": str(DATA_DIR / "test-db.sqlite3")}
else:
    # Persistent connections, checked before reuse: after a database restart no volunteer's request fails on a
    # stale connection. Django's own check is a round trip (SELECT 1) per request; config.postgresql polls the
    # socket instead and only asks the server when the socket has something to say.
    if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
        DATABASES["default"]["ENGINE"] = "config.postgresql"
    DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=600)
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = env.bool("CONN_HEALTH_CHECKS", default=True)
    # The planner's cost of a random page read, for data in memory or on SSDs (PostgreSQL's default, 4, is for
    # spinning disks): with 4, the map's street-zoom join of a few thousand tiles to their consensus hashes the
    # whole consensus table (120 ms on a 200,000-tile project) instead of using the index (14 ms; bench.map).
    # plan_cache_mode: a prepared statement keeps its generic plan. The prepared ones are the volunteers' statements
    # (tagging.rows.cursor(prepare=True)), whose best plan does not depend on their values; PostgreSQL otherwise
    # compares the generic plan's estimate with the first five calls' plans made for their values, and for the
    # one-statement next tile and vote it went on planning them anew on every call: 27% of the PostgreSQL
    # process's CPU time in the planner in a perf profile of next-tile and submit. The two PL/pgSQL vote
    # functions set it for their own statements (migration 0015), whatever the connection says.
    DATABASES["default"].setdefault("OPTIONS", {})["options"] = (
        f"-c random_page_cost={env.float('DB_RANDOM_PAGE_COST', default=1.1)} -c plan_cache_mode=force_generic_plan")
    # The volunteers' statements (tagging.rows.cursor(prepare=True)) are prepared once a connection has run them
    # this many times; "none" turns prepared statements off (a connection pooler in transaction mode that
    # does not track them, such as PgBouncer before 1.21).
    _prepare = env.str("DB_PREPARE_THRESHOLD", default="5")
    DATABASES["default"]["OPTIONS"]["prepare_threshold"] = None if _prepare.lower() == "none" else int(_prepare)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en"
LANGUAGES = [("en", "English"), ("ar", "العربية")]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = DATA_DIR / "static"
MEDIA_ROOT = DATA_DIR / "media"
MEDIA_URL = "media/"

# Tile images go through Django's storage API: the local disk by default, an
# S3-compatible bucket when TILE_BUCKET is set. Keys are deterministic, so a
# re-run of a tiling job overwrites instead of adding "_abc123" copies.
TILE_BUCKET = env.str("TILE_BUCKET", default="")
if TILE_BUCKET:
    _default_storage = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": TILE_BUCKET,
            "endpoint_url": env.str("S3_ENDPOINT_URL", default="") or None,
            "region_name": env.str("S3_REGION", default="") or None,
            "file_overwrite": True,
            "object_parameters": {"CacheControl": "private, max-age=31536000, immutable"},
            "querystring_expire": 3600,
        },
    }
else:
    _default_storage = {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": str(MEDIA_ROOT), "allow_overwrite": True},
    }
STORAGES = {
    "default": _default_storage,
    "staticfiles": {"BACKEND": env.str(
        "STATICFILES_BACKEND", default="whitenoise.storage.CompressedManifestStaticFilesStorage")},
}

# Source imagery (often several GB a file) lives on a disk the workers can read
# with windowed access; in production a volume shared by all worker machines.
IMAGERY_ROOT = Path(env.str("IMAGERY_ROOT", default=str(DATA_DIR / "imagery"))).resolve()
FILE_UPLOAD_TEMP_DIR = str(DATA_DIR / "tmp")
FILE_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024 * 1024
DATA_UPLOAD_MAX_NUMBER_FILES = 500

# Imagery and tiling.
TILE_FORMAT = env.str("TILE_FORMAT", default="webp")
TILE_QUALITY = env.int("TILE_QUALITY", default=80)
TILING_CHUNK_CELLS = env.int("TILING_CHUNK_CELLS", default=8)  # a chunk is N x N grid cells (bench.tiling)
TILING_MAX_ATTEMPTS = env.int("TILING_MAX_ATTEMPTS", default=3)
TILING_STALE_SECONDS = env.int("TILING_STALE_SECONDS", default=600)
IMAGERY_MAX_PIXELS = env.int("IMAGERY_MAX_PIXELS", default=200_000 * 200_000)
IMAGERY_MAX_BANDS = env.int("IMAGERY_MAX_BANDS", default=32)

# Celery. The embedded default needs no server: kombu's filesystem transport on
# DATA_DIR (it has fanout, so `celery inspect` works). Production sets a Redis URL.
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="filesystem://")
BROKER_DIR = DATA_DIR / "broker"
if CELERY_BROKER_URL.startswith("filesystem://"):
    CELERY_BROKER_TRANSPORT = "config.broker:Transport"  # messages written atomically (config/broker.py)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(BROKER_DIR / "queue"),
        "data_folder_out": str(BROKER_DIR / "queue"),
        "control_folder": str(BROKER_DIR / "control"),
        "store_processed": False,
        "polling_interval": 0.02,  # seconds; idle time between tasks (bench.tiling)
    }
else:
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}
CELERY_TASK_IGNORE_RESULT = True  # job state lives in our own tables
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=False)
# Whole-project consensus (reliability re-estimated) for projects with new votes, every N seconds.
CONSENSUS_RECOMPUTE_SECONDS = env.float("CONSENSUS_RECOMPUTE_SECONDS", default=600.0)
CELERY_BEAT_SCHEDULE = {
    "sweep-imagery-jobs": {"task": "workers.imagery.sweep_imagery_jobs",
                           "schedule": env.float("SWEEP_SECONDS", default=60.0)},
    "recompute-consensus": {"task": "workers.tagging.recompute_active_projects",
                            "schedule": CONSENSUS_RECOMPUTE_SECONDS},
}

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.SessionAuthentication",
        "tagging.tokens.TokenAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.LimitOffsetPagination",
    "PAGE_SIZE": 100,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "config.errors.api_exception_handler",
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_THROTTLE_RATES": {"submit": env.str("SUBMIT_RATE", default="120/min"), "token": "10/min"},
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Damage mapping platform API",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
}

# Accounts: sign-up with a public pseudonym; e-mail is optional and only used for password reset.
AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "allauth.account.auth_backends.AuthenticationBackend",
]
LOGIN_URL = "account_login"
LOGIN_REDIRECT_URL = "/"
ACCOUNT_LOGOUT_REDIRECT_URL = "/"
ACCOUNT_LOGIN_METHODS = {"username"}
ACCOUNT_SIGNUP_FIELDS = ["username*", "email", "password1*", "password2*"]
ACCOUNT_EMAIL_VERIFICATION = "none"
ACCOUNT_RATE_LIMITS = {"login_failed": "10/m/ip,5/5m/key", "signup": "20/h/ip", "reset_password": "5/h/ip"}
EMAIL_BACKEND = env.str("EMAIL_BACKEND", default="django.core.mail.backends.console.EmailBackend")
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="noreply@localhost")

# One cache shared by every server process (rate limits need that): files under DATA_DIR
# by default, Redis in production (CACHE_URL=redis://...).
CACHES = {
    "default": env.cache("CACHE_URL", default=f"filecache://{DATA_DIR / 'cache'}"),
    # What each server process remembers for itself for a few seconds, without a round trip: who an API token
    # is (tagging.tokens), who may see a layer's imagery or a project's map (imagery.xyz, tagging.map_api).
    "local": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "process",
              "OPTIONS": {"MAX_ENTRIES": 50_000}},
}
if CACHES["default"]["BACKEND"] == "django.core.cache.backends.redis.RedisCache":
    CACHES["default"]["BACKEND"] = "config.cache.RedisCache"  # one Redis client per pool, not per call
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
}

if not EMBEDDED:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SESSION_COOKIE_SECURE = env.bool("SECURE_COOKIES", default=True)
    CSRF_COOKIE_SECURE = env.bool("SECURE_COOKIES", default=True)

# Volunteers and assignment.
LEASE_SECONDS = env.int("LEASE_SECONDS", default=600)
TUTORIAL_PRACTICE_TILES = env.int("TUTORIAL_PRACTICE_TILES", default=3)
INVITATION_DAYS = env.int("INVITATION_DAYS", default=30)
GOLD_RATE_NEWCOMER = 0.4
GOLD_RATE_DECAY_TILES = 20.0
MIN_SECONDS_PER_TILE = env.float("MIN_SECONDS_PER_TILE", default=1.5)
MAX_MARKS_PER_TILE = 200
# How long a web process trusts an API token's user without asking the database (tagging.tokens); 0: never.
TOKEN_CACHE_SECONDS = env.float("TOKEN_CACHE_SECONDS", default=30.0)
