"""Every knob comes from the environment (django-environ), with embedded defaults.

The embedded default needs no service: SQLite, files on disk under XRAYWEB_DATA_DIR, and
kombu's filesystem transport as the Celery broker. Production sets DATABASE_URL, REDIS_URL
and friends; the code is the same.
"""

import ipaddress
import json
import os
from datetime import timedelta
from pathlib import Path

import environ

from xrayweb.brokers import filesystem_broker_options

BASE_DIR = Path(__file__).resolve().parent.parent
env = environ.Env()

DATA_DIR = Path(env.str("XRAYWEB_DATA_DIR", default=str(BASE_DIR / "var"))).resolve()

DEV_SECRET_KEY = "insecure-dev-key-set-SECRET_KEY-in-production"
SECRET_KEY = env.str("SECRET_KEY", default=DEV_SECRET_KEY)
DEBUG = env.bool("DEBUG", default=False)
# Keys the UID remapping of de-identified DICOM exports: keep it stable, so the same study
# always maps to the same new UIDs. Its own key in production; derived from SECRET_KEY here.
DEID_SECRET = env.str("DEID_SECRET", default="") or f"deid:{SECRET_KEY}"
# The key of the audit trail's hash chains (xrayweb/audit/chain.py). It must stay the same for
# the life of the database: `manage.py audit_verify` checks every row against it. Keep it out
# of the database's reach, so that whoever can write rows cannot forge a chain.
AUDIT_CHAIN_KEY = env.str("AUDIT_CHAIN_KEY", default="") or f"audit:{SECRET_KEY}"
# Reverse proxies whose X-Forwarded-For is believed (addresses or networks, comma-separated).
# Empty: the header is ignored and the audit records the peer's address.
TRUSTED_PROXIES = env.list("TRUSTED_PROXIES", default=[])
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "testserver"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])
CSRF_FAILURE_VIEW = "xrayweb.errors.csrf_failure"

# HTTPS=1 behind the reverse proxy (docker/): redirect to HTTPS, HSTS, secure cookies, and
# trust the proxy's X-Forwarded-Proto. Off for `make run` on plain http://127.0.0.1.
HTTPS = env.bool("HTTPS", default=False)
if HTTPS:
    SECURE_SSL_REDIRECT = True
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31_536_000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=True)
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    # The health check is probed over plain http inside the compose network.
    SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^metrics$"]
# Production (docker/compose.yaml; HTTPS implies it): refuse to start with the public default
# SECRET_KEY, or with the audit-chain and de-identification keys missing (derived from
# SECRET_KEY, one leaked key would give all three) or equal to another. `make run` is not
# production and derives them.
PRODUCTION = env.bool("PRODUCTION", default=HTTPS)
if PRODUCTION:
    _secrets = {
        "SECRET_KEY": "" if SECRET_KEY == DEV_SECRET_KEY else SECRET_KEY,
        "AUDIT_CHAIN_KEY": env.str("AUDIT_CHAIN_KEY", default=""),
        "DEID_SECRET": env.str("DEID_SECRET", default=""),
    }
    _problems = [f"set {name}" for name, value in _secrets.items() if not value.strip()]
    _given = [value for value in _secrets.values() if value.strip()]
    if len(set(_given)) != len(_given):
        _problems.append("SECRET_KEY, AUDIT_CHAIN_KEY and DEID_SECRET must differ")
    if _problems:
        from django.core.exceptions import ImproperlyConfigured

        raise ImproperlyConfigured(
            f"production needs its own secrets: {'; '.join(_problems)} (docker/env.example)"
        )
# Sessions end after SESSION_IDLE_MINUTES without a request (each request renews them), not
# after Django's two weeks: a reading-room workstation left signed in is closed by itself.
# /healthz answers anonymous callers from a report at most this old (admins get it fresh).
HEALTHZ_CACHE_SECONDS = env.int("HEALTHZ_CACHE_SECONDS", default=10)
# Prometheus metrics at /metrics (xrayweb/ops/metrics.py) for callers from these networks
# (comma-separated CIDRs; the address as client_ip reads it), for `Authorization: Bearer
# METRICS_TOKEN` (empty: no token accepted), and for an admin's API token or session.
METRICS_ALLOWED_NETWORKS = [
    ipaddress.ip_network(n.strip())
    for n in env.list("METRICS_ALLOWED_NETWORKS", default=["127.0.0.1/32", "::1/128"])
    if n.strip()
]
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")
SESSION_COOKIE_AGE = env.int("SESSION_IDLE_MINUTES", default=30) * 60
SESSION_SAVE_EVERY_REQUEST = True
X_FRAME_OPTIONS = "DENY"
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
# Content-Security-Policy (django-csp): scripts and styles only from this server's own files,
# no inline script, style or event handler; no framing (frame-ancestors); canvases may read
# the X-ray images (img-src self, blob:). Every page is checked by tests/xrayweb/test_security.py.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:", "blob:"],
        "font-src": ["'self'"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
}
# Repeated failed logins lock the account from that address (django-axes): AXES_FAILURE_LIMIT
# failures, then AXES_COOLOFF_MINUTES. The login page and the token endpoint both count.
AXES_ENABLED = env.bool("AXES_ENABLED", default=True)
AXES_FAILURE_LIMIT = env.int("AXES_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = timedelta(minutes=env.int("AXES_COOLOFF_MINUTES", default=15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
# Password spraying (a few tries on each of many accounts): an address with this many failed
# logins within the cool-off, whatever the usernames, is locked out too (accounts/lockout.py).
AXES_HANDLER = "xrayweb.accounts.lockout.SprayAwareHandler"
AXES_SPRAY_LIMIT = env.int("AXES_SPRAY_LIMIT", default=20)
# The client's address as the audit log records it (X-Forwarded-For believed only from
# TRUSTED_PROXIES): behind nginx, REMOTE_ADDR is always the proxy, so keying on it would let
# five bad passwords lock a user out for everyone.
AXES_CLIENT_IP_CALLABLE = "xrayweb.audit.addresses.client_ip"
AXES_RESET_ON_SUCCESS = True
AXES_HTTP_RESPONSE_CODE = 429
AXES_VERBOSE = False
# Refused logins go into the audit chain; while an address is locked out, one row per this
# many seconds, however many tries (axes' own tables keep every attempt).
LOGIN_REFUSAL_AUDIT_SECONDS = env.float("LOGIN_REFUSAL_AUDIT_SECONDS", default=60.0)
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    # API tokens: stored as SHA-512 digests, each with an expiry (django-rest-knox).
    "knox",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "axes",
    "csp",
    "xrayweb.accounts",
    "xrayweb.audit",
    "xrayweb.directory",
    "xrayweb.studies",
    "xrayweb.inference",
    "xrayweb.review",
    "xrayweb.dicomnet",
    "xrayweb.api",
    "xrayweb.ops",
]

MIDDLEWARE = [
    # First, so it counts and times every answer (Prometheus, /metrics).
    "xrayweb.ops.metrics.RequestMetricsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    # Before the CSRF check, which reads the form: uploaded file names are checked as parsed.
    "xrayweb.studies.middleware.StrictUploadNamesMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.auth.middleware.LoginRequiredMiddleware",
    # Who acts, for audit rows written from model signals (account, token, destination changes).
    "xrayweb.audit.context.AuditContextMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    "axes.middleware.AxesMiddleware",  # last, as django-axes asks
]

ROOT_URLCONF = "xrayweb.urls"
WSGI_APPLICATION = "xrayweb.wsgi.application"

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
                "xrayweb.accounts.context_processors.roles",
            ],
        },
    },
]

# An empty DATABASE_URL counts as unset (compose files often pass empty variables through).
DATABASE_URL = env.str("DATABASE_URL", default="") or f"sqlite:///{DATA_DIR / 'db.sqlite3'}"
DATABASES = {"default": env.db_url_config(DATABASE_URL)}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Web server and worker write to the same file: wait for locks instead of failing, and
    # take the write lock at BEGIN so two writers never deadlock on an upgrade.
    # Write-ahead logging: readers (the web pages) never wait for the worker's writes, and
    # a commit is one append to the log instead of a rollback journal created and deleted.
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 30,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL;",
    }
    # A file, not :memory:, so the worker process started by end-to-end tests sees it.
    DATABASES["default"]["TEST"] = {"NAME": str(DATA_DIR / "test-db.sqlite3")}
    Path(DATABASES["default"]["NAME"]).parent.mkdir(parents=True, exist_ok=True)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = env.str("TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = Path(env.str("STATIC_ROOT", default=str(DATA_DIR / "static")))
MEDIA_URL = "media/"
MEDIA_ROOT = Path(env.str("MEDIA_ROOT", default=str(DATA_DIR / "media")))
# Media (X-rays, DICOM originals, heatmaps) behind Django's storage API: local disk by
# default; MEDIA_STORAGE=s3 for S3-compatible object storage through django-storages
# (pip install 'xrayweb[s3]'). Files are always served through the permission-checking view.
MEDIA_STORAGE = env.str("MEDIA_STORAGE", default="local")
# Patient images on disk are readable by the app's own user and group only (not 0644).
FILE_UPLOAD_PERMISSIONS = 0o640
FILE_UPLOAD_DIRECTORY_PERMISSIONS = 0o750
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
if MEDIA_STORAGE == "s3":
    STORAGES["default"] = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": env.str("S3_BUCKET"),
            "endpoint_url": env.str("S3_ENDPOINT_URL", default="") or None,
            "region_name": env.str("S3_REGION", default="") or None,
            "access_key": env.str("S3_ACCESS_KEY", default="") or None,
            "secret_key": env.str("S3_SECRET_KEY", default="") or None,
            "default_acl": "private",
            "querystring_auth": True,
            "file_overwrite": False,
        },
    }
elif MEDIA_STORAGE != "local":
    raise ValueError(f"MEDIA_STORAGE must be 'local' or 's3', not {MEDIA_STORAGE!r}")

# Uploads: size cap per file, files per request, and a pixel limit suited to chest X-rays.
MAX_UPLOAD_BYTES = env.int("MAX_UPLOAD_BYTES", default=50 * 1024 * 1024)
MAX_UPLOAD_FILES = env.int("MAX_UPLOAD_FILES", default=20)
MAX_IMAGE_PIXELS = env.int("MAX_IMAGE_PIXELS", default=50_000_000)
DATA_UPLOAD_MAX_NUMBER_FILES = MAX_UPLOAD_FILES
FILE_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024

# Review: require two independent reads (disagreements go to arbitration), and the
# ensemble probability below which a prediction counts as low confidence on the worklist.
REVIEW_SECOND_READ = env.bool("REVIEW_SECOND_READ", default=False)
REVIEW_LOW_CONFIDENCE = env.float("REVIEW_LOW_CONFIDENCE", default=0.6)
WORKLIST_PAGE_SIZE = env.int("WORKLIST_PAGE_SIZE", default=50)
# The saliency audit: a prediction whose fused Grad-CAM has less than this share of its mass
# inside the predicted lungs "looked outside the lungs" (dashboard, worklist, study page).
CAM_OUTSIDE_LUNGS_THRESHOLD = env.float("CAM_OUTSIDE_LUNGS_THRESHOLD", default=0.5)

# Models: where retrained bundles go, and how the inference worker runs them.
MODEL_DIR = Path(env.str("MODEL_DIR", default=str(DATA_DIR / "models")))
INFERENCE_DEVICE = env.str("INFERENCE_DEVICE", default="auto")
INFERENCE_PRECISION = env.str("INFERENCE_PRECISION", default="auto")
INFERENCE_BATCH_SIZE = env.int("INFERENCE_BATCH_SIZE", default=8)
# How many queued studies one inference task takes into one predict() call.
INFERENCE_STUDIES_PER_TASK = env.int("INFERENCE_STUDIES_PER_TASK", default=8)
# "fast" (one forward pass for prediction and CAM) or "pytorch-grad-cam" (the library's GradCAM)
INFERENCE_CAM_ENGINE = env.str("INFERENCE_CAM_ENGINE", default="fast")
# Stored heatmaps keep the X-ray's aspect ratio, at most this many pixels on the longest side.
INFERENCE_CAM_MAX_SIDE = env.int("INFERENCE_CAM_MAX_SIDE", default=512)

# Celery: Redis when REDIS_URL is set, otherwise a broker that needs no server.
REDIS_URL = env.str("REDIS_URL", default="")
BROKER_DIR = Path(env.str("BROKER_DIR", default=str(DATA_DIR / "broker")))
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="") or REDIS_URL or "filesystem://"
if CELERY_BROKER_URL.startswith(("filesystem://", "kombu-filesystem://")):
    # "filesystem://" is kombu's transport with atomic writes and claims here
    # (xrayweb/brokers.py): the stock one let a worker read a half-written message and die.
    CELERY_BROKER_TRANSPORT_OPTIONS = filesystem_broker_options(BROKER_DIR)
# Each worker writes a heartbeat this often; /healthz and `manage.py status` report "no
# worker has answered for N s" (and fail) once none is newer than WORKER_STALE_SECONDS.
WORKER_HEARTBEAT_SECONDS = env.float("WORKER_HEARTBEAT_SECONDS", default=10.0)
WORKER_STALE_SECONDS = env.float("WORKER_STALE_SECONDS", default=60.0)
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_TIME_LIMIT = env.int("CELERY_TASK_TIME_LIMIT", default=600)
CELERY_TASK_SOFT_TIME_LIMIT = CELERY_TASK_TIME_LIMIT - 30
# A study "running" longer than this lost its worker; its redelivered task may claim it again.
INFERENCE_LEASE_SECONDS = env.int("INFERENCE_LEASE_SECONDS", default=CELERY_TASK_TIME_LIMIT + 60)
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Publishing gives up fast when the broker is down (the upload is kept; the reconciler
# enqueues it later) instead of holding the web request for long.
CELERY_TASK_PUBLISH_RETRY_POLICY = {
    "max_retries": 2,
    "interval_start": 0,
    "interval_step": 0.2,
    "interval_max": 0.5,
}
# Claims per study before it fails for good, and the first retry delay (doubling, jittered).
INFERENCE_MAX_ATTEMPTS = env.int("INFERENCE_MAX_ATTEMPTS", default=3)
INFERENCE_RETRY_BACKOFF = env.float("INFERENCE_RETRY_BACKOFF", default=5.0)
# The reconciler re-enqueues studies "queued" longer than this (a lost message, a broker that
# was down at upload) and requeues "running" ones past the lease.
RECONCILE_QUEUED_SECONDS = env.int("RECONCILE_QUEUED_SECONDS", default=300)
CELERY_BEAT_SCHEDULE = {
    "reconcile-studies": {
        "task": "xrayweb.inference.tasks.reconcile_studies",
        "schedule": env.float("RECONCILE_EVERY_SECONDS", default=60.0),
    },
    "resend-overdue-deliveries": {
        "task": "xrayweb.dicomnet.tasks.resend_overdue",
        "schedule": env.float("RECONCILE_EVERY_SECONDS", default=60.0),
    },
    # The audit chains, verified (an alarm on /healthz and the audit log page for admins).
    "verify-audit-chains": {
        "task": "xrayweb.audit.tasks.verify_chains",
        "schedule": env.float("AUDIT_VERIFY_EVERY_SECONDS", default=3600.0),
    },
}

# Directory sign-in (issue 29), off unless LDAP_SERVER_URI is set: staff sign in with their
# hospital account (OpenLDAP or Active Directory, through django-auth-ldap). Directory groups
# give the roles (LDAP_ROLE_GROUPS) and the site (LDAP_SITE_GROUPS), JSON objects of name to
# group DN; only members of a role group may sign in. Local accounts still sign in with their
# own password (break-glass admins, `make run`), and a directory entry never takes over a
# local account of the same name. Every DIRECTORY_CHECK_EVERY_SECONDS (15 min) Celery beat
# checks each directory user: whoever the directory no longer lists in a role group is turned
# off (sessions end) and loses their API tokens. TLS: ldaps:// or LDAP_START_TLS, with
# LDAP_CA_FILE to trust the directory's CA; the certificate is always verified.
# xrayweb/README.md ("Sign-in") has an example; docker/env.example lists the variables.
LDAP_SERVER_URI = env.str("LDAP_SERVER_URI", default="")
DIRECTORY_ROLE_GROUPS: dict[str, str] = {}
DIRECTORY_SITE_GROUPS: dict[str, str] = {}
if LDAP_SERVER_URI:
    from xrayweb.directory_config import directory_settings

    globals().update(
        directory_settings(
            uri=LDAP_SERVER_URI,
            bind_dn=env.str("LDAP_BIND_DN", default=""),
            bind_password=env.str("LDAP_BIND_PASSWORD", default=""),
            user_base=env.str("LDAP_USER_BASE", default=""),
            user_filter=env.str("LDAP_USER_FILTER", default="(uid=%(user)s)"),
            group_base=env.str("LDAP_GROUP_BASE", default=""),
            role_groups=json.loads(env.str("LDAP_ROLE_GROUPS", default="") or "{}"),
            site_groups=json.loads(env.str("LDAP_SITE_GROUPS", default="") or "{}"),
            start_tls=env.bool("LDAP_START_TLS", default=False),
            ca_file=env.str("LDAP_CA_FILE", default=""),
            timeout=env.float("LDAP_TIMEOUT_SECONDS", default=5.0),
        )
    )
    AUTHENTICATION_BACKENDS.insert(1, "xrayweb.directory.backend.DirectoryBackend")
    CELERY_BEAT_SCHEDULE["check-directory"] = {
        "task": "xrayweb.directory.tasks.check_directory",
        "schedule": env.float("DIRECTORY_CHECK_EVERY_SECONDS", default=900.0),
    }
# The drift monitor (issue 29; xrayweb/review/monitoring.py, docs in xrayweb/README.md "The
# drift monitor"): for each site and model version, over the last MONITOR_WINDOW_FILMS films
# (a verdict needs MONITOR_MIN_FILMS of them, MONITOR_MIN_REVIEWED with a final reading for
# agreement; the earlier films are the baseline once MONITOR_BASELINE_FILMS of them have a
# final reading, the validation films before that), an alarm fires when
# - at least MONITOR_DISTANCE_SHARE of the films are further from the training films than
#   95% of those were, and the KS test against the validation films gives p < MONITOR_P_VALUE;
# - the prediction mix is MONITOR_MIX_SHIFT or more (total variation) from the validation mix,
#   and the chi-square test gives p < MONITOR_P_VALUE;
# - the mean confidence is MONITOR_CONFIDENCE_DROP or more below the validation films';
# - agreement with the radiologists' final labels is MONITOR_AGREEMENT_DROP or more below the
#   earlier films' (or the validation films'), and the one-sided test gives p < MONITOR_P_VALUE.
# Celery beat checks every MONITOR_CHECK_EVERY_SECONDS; `manage.py monitor` checks for cron.
MONITOR_WINDOW_FILMS = env.int("MONITOR_WINDOW_FILMS", default=80)
MONITOR_MIN_FILMS = env.int("MONITOR_MIN_FILMS", default=30)
MONITOR_MIN_REVIEWED = env.int("MONITOR_MIN_REVIEWED", default=30)
MONITOR_P_VALUE = env.float("MONITOR_P_VALUE", default=0.001)
MONITOR_DISTANCE_SHARE = env.float("MONITOR_DISTANCE_SHARE", default=0.35)
MONITOR_MIX_SHIFT = env.float("MONITOR_MIX_SHIFT", default=0.25)
MONITOR_CONFIDENCE_DROP = env.float("MONITOR_CONFIDENCE_DROP", default=0.10)
MONITOR_AGREEMENT_DROP = env.float("MONITOR_AGREEMENT_DROP", default=0.10)
MONITOR_BASELINE_FILMS = env.int("MONITOR_BASELINE_FILMS", default=100)
MONITOR_WEEKS = env.int("MONITOR_WEEKS", default=26)
CELERY_BEAT_SCHEDULE["check-drift"] = {
    "task": "xrayweb.review.tasks.check_drift",
    "schedule": env.float("MONITOR_CHECK_EVERY_SECONDS", default=3600.0),
}
# A worker child is replaced after it grows past this many KiB (leaks, fragmentation).
CELERY_WORKER_MAX_MEMORY_PER_CHILD = env.int("WORKER_MAX_MEMORY_KB", default=6_000_000)
CELERY_WORKER_CONCURRENCY = env.int("WORKER_CONCURRENCY", default=1)
# torch threads per worker process on CPU: the cores shared among the worker's processes. One
# process per core runs the model faster in all than one process with a thread per core, and
# one process's PNG and database work overlaps another's model time.
INFERENCE_THREADS = env.int(
    "INFERENCE_THREADS", default=max(1, (os.cpu_count() or 1) // max(1, CELERY_WORKER_CONCURRENCY))
)
# Retraining may run for hours; the inference tasks, minutes.
TRAINING_TIME_LIMIT = env.int("TRAINING_TIME_LIMIT", default=6 * 3600)
if CELERY_BROKER_URL.startswith(("redis://", "rediss://")):
    # Redis redelivers an unacknowledged task after the visibility timeout: it must outlast
    # the longest task, or a slow task runs twice. Lost inference work is picked up sooner by
    # the reconciler.
    # kombu 5.7 looks for tasks past their visibility timeout every unacked_restore_interval
    # seconds but scans Redis only on every unacked_restore_throttle-th look (10 x 10 s by
    # default): every REDIS_RESTORE_EVERY_SECONDS instead (a cheap scan of one sorted set).
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "visibility_timeout": env.int(
            "REDIS_VISIBILITY_TIMEOUT", default=TRAINING_TIME_LIMIT + 3600
        ),
        "unacked_restore_interval": env.int("REDIS_RESTORE_EVERY_SECONDS", default=10),
        "unacked_restore_throttle": 1,
    }
    # Several deployments (or a test run) may share one Redis: each keeps its keys apart.
    if REDIS_KEY_PREFIX := env.str("REDIS_KEY_PREFIX", default=""):
        CELERY_BROKER_TRANSPORT_OPTIONS["global_keyprefix"] = REDIS_KEY_PREFIX

# The DICOM node (xrayweb/dicomnet): the Storage SCP that `manage.py dicom_listener` runs, and
# the delivery of results (SR, Secondary Capture) to the destinations in the database.
DICOM_AE_TITLE = env.str("DICOM_AE_TITLE", default="XRAYWEB")
DICOM_HOST = env.str("DICOM_HOST", default="127.0.0.1")
DICOM_PORT = env.int("DICOM_PORT", default=11112)
# Calling AE titles allowed to associate, each tied to where it may come from:
# "PACS@10.1.2.3,MODALITY@10.20.0.0/16" (a bare "AET": from anywhere, refused in production);
# empty: any title (not in production).
DICOM_ALLOWED_CALLING_AETS = env.list("DICOM_ALLOWED_CALLING_AETS", default=[])
# DICOM TLS (optional): this node's certificate and key (PEM), and the CA whose certificates
# peers must present (empty: peers are not asked for one).
DICOM_TLS_CERT = env.str("DICOM_TLS_CERT", default="")
DICOM_TLS_KEY = env.str("DICOM_TLS_KEY", default="")
DICOM_TLS_CA = env.str("DICOM_TLS_CA", default="")
DICOM_MAX_ASSOCIATIONS = env.int("DICOM_MAX_ASSOCIATIONS", default=10)
# Refused associations: the first from an address is audited at once, the rest of each such
# interval (seconds) in one row with their counts, so a flood cannot flood the audit chain.
DICOM_REFUSAL_AUDIT_SECONDS = env.float("DICOM_REFUSAL_AUDIT_SECONDS", default=60.0)
# The user that studies received over the network are uploaded by, as the audit names them.
DICOM_SERVICE_USER = env.str("DICOM_SERVICE_USER", default="dicom-node")
# Seconds of silence on an association before it is dropped (ACSE, DIMSE and the socket).
DICOM_NETWORK_TIMEOUT = env.int("DICOM_NETWORK_TIMEOUT", default=60)
# STOW-RS: the largest request body read (it is held in memory).
DICOMWEB_MAX_BYTES = env.int("DICOMWEB_MAX_BYTES", default=4 * MAX_UPLOAD_BYTES)
# STOW-RS: the most instances (body parts) one request may carry (413 beyond).
DICOMWEB_MAX_PARTS = env.int("DICOMWEB_MAX_PARTS", default=100)
# Result delivery: attempts per object before it is marked failed, the first retry delay
# (doubling, capped) and the timeout of one send.
DICOM_DELIVERY_MAX_ATTEMPTS = env.int("DICOM_DELIVERY_MAX_ATTEMPTS", default=8)
DICOM_DELIVERY_BACKOFF = env.float("DICOM_DELIVERY_BACKOFF", default=15.0)
DICOM_DELIVERY_BACKOFF_MAX = env.float("DICOM_DELIVERY_BACKOFF_MAX", default=1800.0)
DICOM_DELIVERY_TIMEOUT = env.int("DICOM_DELIVERY_TIMEOUT", default=30)

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        # Token first, so an anonymous request gets 401 with a WWW-Authenticate header.
        "knox.auth.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "EXCEPTION_HANDLER": "xrayweb.api.errors.exception_handler",
    "DEFAULT_PAGINATION_CLASS": "xrayweb.api.pagination.ApiPagination",
    "DEFAULT_SCHEMA_CLASS": "xrayweb.api.schema.ApiSchema",
}
# API tokens (issue 27: they were stored in plain text and never expired). Each sign-in
# (POST /api/auth/token/) issues a new one, kept only as a digest; it expires after
# API_TOKEN_TTL_HOURS (default 30 days: an integration signs in again monthly, a leaked token
# dies on its own), and a user holds at most API_TOKENS_PER_USER at once.
REST_KNOX = {
    "TOKEN_TTL": timedelta(hours=env.float("API_TOKEN_TTL_HOURS", default=30 * 24)),
    "TOKEN_LIMIT_PER_USER": env.int("API_TOKENS_PER_USER", default=10),
    "AUTO_REFRESH": False,
    "AUTH_HEADER_PREFIX": "Token",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "xrayweb API",
    "DESCRIPTION": (
        "Chest X-ray studies, their ensemble predictions with Grad-CAM heatmaps, and the "
        "radiologists' readings. Authenticate with `Authorization: Token <key>` (POST "
        '/api/auth/token/) or a session. Errors are `{"detail": ..., "errors": ...}`.'
    ),
    "VERSION": "1",
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    # Deep links put a link inside each operation's button (nested interactive controls,
    # which screen readers cannot use).
    "SWAGGER_UI_SETTINGS": {"deepLinking": False},
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "ENUM_NAME_OVERRIDES": {"ReviewStateEnum": "xrayweb.studies.models.ReviewState"},
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
}
