"""PortWatch settings, read from the environment.

With no environment at all, PortWatch runs from a checkout on an embedded
default: a SQLite file and Celery's filesystem broker under ``var/``. Setting
``DATABASE_URL`` (PostgreSQL through psycopg 3) and ``REDIS_URL`` switches any
process to the production stack.
"""

import os
import re
import secrets
from datetime import timedelta
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from portwatch.env import bind_url, env_bool, env_int, env_list, env_str

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("PORTWATCH_VAR_DIR", str(BASE_DIR / "var")))
VAR_DIR.mkdir(parents=True, exist_ok=True)

# The local run is a development server on loopback; production sets DEBUG=0.
DEBUG = env_bool("DEBUG", True)


def _local_secret_key(path: Path) -> str:
    """Read the key kept under var/, creating it once.

    web, worker and beat start at the same moment, so the file is written
    under a temporary name and linked into place: exactly one process creates
    it and every process reads the same key.
    """
    if not path.exists():
        tmp = path.with_name(f".{path.name}.{os.getpid()}")
        tmp.write_text(secrets.token_urlsafe(50))
        tmp.chmod(0o600)
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    return path.read_text().strip()


# A remote scanner (``manage.py run_scanner``, DESIGN.md "Running it"): a worker
# inside a network segment that holds no database credentials at all. It talks
# to the broker only, with orders and results signed by its vantage point's key
# (scans.orders); any use of the database raises. It signs no sessions.
SCANNER_ONLY = env_bool("PORTWATCH_SCANNER_ONLY", False)
SCANNER_VANTAGE = env_str("PORTWATCH_SCANNER_VANTAGE")
SCANNER_KEY = env_str("PORTWATCH_SCANNER_KEY")
# Networks a remote scanner accepts orders for, whatever the orders say
# (defence in depth against a compromised centre); empty: the orders' scope.
SCANNER_ALLOWED_NETWORKS = env_list("PORTWATCH_SCANNER_ALLOWED_NETWORKS")

SECRET_KEY = env_str("SECRET_KEY")
if not SECRET_KEY and SCANNER_ONLY:
    SECRET_KEY = secrets.token_urlsafe(50)
if not SECRET_KEY:
    # The embedded default (no DATABASE_URL: one machine, one var/) keeps its key
    # under var/, DEBUG on or off (`make run` runs with it off). An installation
    # on PostgreSQL may have web processes on several machines: it names its key.
    if not DEBUG and env_str("DATABASE_URL"):
        raise ImproperlyConfigured(
            "SECRET_KEY must be set in the environment when DEBUG is off and DATABASE_URL is set."
        )
    SECRET_KEY = _local_secret_key(VAR_DIR / "secret_key")

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")
# Where links in alerts and emails point to, e.g. https://portwatch.example.org
# Default: where `make run` serves (PORTWATCH_BIND, as the Procfile reads it; a
# wildcard bind is reached on loopback).
SITE_URL = env_str("SITE_URL", bind_url()).rstrip("/")

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "django_filters",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "axes",
    "inventory",
    "reach",
    "scans",
    "alerts",
    "tallies",
    "listeners",
    "certs",
    "accounts",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # Every time on a page in the signed-in person's own time zone (accounts.time_zones).
    "accounts.time_zones.PersonalTimeZoneMiddleware",
    # Every page requires login unless a view opts out explicitly.
    "django.contrib.auth.middleware.LoginRequiredMiddleware",
    # A NUL byte in a parameter is a 400 before any view reads it (PostgreSQL text holds none).
    "portwatch.nul_bytes.RefuseNulBytesMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "portwatch.middleware.ContentSecurityPolicyMiddleware",
    # Last, so the lockout page it swaps in still gets the headers above.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "portwatch.urls"
WSGI_APPLICATION = "portwatch.wsgi.application"

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
                "portwatch.roles.role_context",
                "portwatch.navigation.navigation",
            ],
        },
    },
]

# Selects built in Python, everything else by Django's templates (see the module).
FORM_RENDERER = "portwatch.form_renderer.FormRenderer"

DATABASE_URL = env_str("DATABASE_URL")
if DATABASE_URL:
    DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=60, conn_health_checks=True)}
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": VAR_DIR / "portwatch.sqlite3",
            "OPTIONS": {
                # web, worker and beat share one file: WAL lets readers run
                # beside a writer, IMMEDIATE takes the write lock up front so
                # two writers queue on the timeout instead of deadlocking.
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
                "transaction_mode": "IMMEDIATE",
                "timeout": 30,
            },
        }
    }
if SCANNER_ONLY:
    if DATABASE_URL:
        raise ImproperlyConfigured(
            "PORTWATCH_SCANNER_ONLY is set: a remote scanner holds no database credentials. Unset DATABASE_URL."
        )
    if not env_str("REDIS_URL") or not SCANNER_VANTAGE or not SCANNER_KEY:
        raise ImproperlyConfigured(
            "A remote scanner needs REDIS_URL (the central broker), PORTWATCH_SCANNER_VANTAGE (its vantage "
            "point) and PORTWATCH_SCANNER_KEY (that vantage point's key: python manage.py scanner_key NAME "
            "on the central side)."
        )
    if not re.fullmatch(r"[0-9a-f]{64}", SCANNER_KEY):
        raise ImproperlyConfigured("PORTWATCH_SCANNER_KEY must be the 64 hex digits manage.py scanner_key prints.")
    # Django's dummy backend: any query raises ImproperlyConfigured.
    DATABASES = {}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 12}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "overview"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = env_str("TIME_ZONE", "UTC")
# PortWatch is written in English and translates nothing. With translation on,
# every "3 hours ago" of a list's rows went through the message catalogues'
# plural rules: about 5 % of a page's CPU under load (bench-load). Dates and
# numbers keep English formats either way (LANGUAGE_CODE's format module).
USE_I18N = False
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = VAR_DIR / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}
WHITENOISE_USE_FINDERS = DEBUG

# Hardening that costs nothing on loopback and is expected behind TLS.
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", not DEBUG)
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", not DEBUG)
SESSION_COOKIE_AGE = env_int("SESSION_COOKIE_AGE", 12 * 3600, minimum=300)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"

# One TLS-terminating proxy in front of gunicorn: its X-Forwarded-Proto says
# whether the browser used HTTPS, and its X-Forwarded-For entry (the right-most)
# is the client's address (portwatch.client_address). Without it, both
# headers are the client's own words and are ignored.
BEHIND_TLS_PROXY = env_bool("BEHIND_TLS_PROXY", False)
if BEHIND_TLS_PROXY:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# HTTPS only, on by default behind the proxy. Health probes and Prometheus
# scrapes reach gunicorn over plain HTTP inside the network, past the proxy: a
# redirect to https:// there would fail them, so those two paths answer as they are.
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", BEHIND_TLS_PROXY, blank_is_default=True)
SECURE_REDIRECT_EXEMPT = [r"^health$", r"^metrics$"]
# Browsers remember HSTS (sent on HTTPS responses only): a year by default behind the proxy.
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 365 * 24 * 3600 if BEHIND_TLS_PROXY else 0, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", BEHIND_TLS_PROXY, blank_is_default=True)
# Asking browsers to preload HTTPS is a commitment for the whole registrable domain
# and slow to undo: the domain's owner opts in, so Django's reminder (W021) is
# answered here rather than by a default.
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", False, blank_is_default=True)
if SECURE_HSTS_PRELOAD and not (SECURE_HSTS_INCLUDE_SUBDOMAINS and SECURE_HSTS_SECONDS >= 365 * 24 * 3600):
    raise ImproperlyConfigured(
        "SECURE_HSTS_PRELOAD=1 needs SECURE_HSTS_INCLUDE_SUBDOMAINS=1 and SECURE_HSTS_SECONDS of at least "
        "31536000 (one year): browsers' preload lists accept nothing less."
    )
SILENCED_SYSTEM_CHECKS = [] if SECURE_HSTS_PRELOAD else ["security.W021"]

# --- Logins: lockout (django-axes) and the API's bad-token throttle ---------------

# Refuses a locked-out (username, address) pair before any password is checked;
# then local accounts (LOCAL_LOGIN=0 turns them off), then the directory
# (LDAP_SERVER_URI: accounts.directory) - local first, so a directory user of
# the same name is never tried against a local account's password.
LOCAL_LOGIN = env_bool("LOCAL_LOGIN", True)
AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend"]
if LOCAL_LOGIN:
    AUTHENTICATION_BACKENDS.append("django.contrib.auth.backends.ModelBackend")
if env_str("LDAP_SERVER_URI"):
    from accounts.directory import settings_from_environment

    globals().update(settings_from_environment())
    AUTHENTICATION_BACKENDS.append("accounts.directory.DirectoryBackend")
# OpenID Connect (OIDC_RP_CLIENT_ID: accounts.oidc): a button on the login page.
OIDC_ENABLED = False
if env_str("OIDC_RP_CLIENT_ID"):
    from accounts.oidc_settings import settings_from_environment as oidc_settings

    globals().update(oidc_settings())
    AUTHENTICATION_BACKENDS.append("accounts.oidc.ProviderBackend")
if len(AUTHENTICATION_BACKENDS) == 1:
    raise ImproperlyConfigured(
        "LOCAL_LOGIN=0 leaves no way to log in: configure single sign-on (LDAP_SERVER_URI or OIDC_RP_CLIENT_ID) first."
    )
# LOGIN_FAILURE_LIMIT failed logins as one username from one address lock that
# pair out for LOGIN_LOCKOUT_MINUTES (0: until an admin unlocks it). The pair,
# not the username alone, so that nobody can lock an admin out from elsewhere.
LOGIN_FAILURE_LIMIT = env_int("LOGIN_FAILURE_LIMIT", 5, minimum=1, maximum=1000)
LOGIN_LOCKOUT_MINUTES = env_int("LOGIN_LOCKOUT_MINUTES", 15, minimum=0)
AXES_FAILURE_LIMIT = LOGIN_FAILURE_LIMIT
AXES_COOLOFF_TIME = timedelta(minutes=LOGIN_LOCKOUT_MINUTES) if LOGIN_LOCKOUT_MINUTES else None
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_CLIENT_IP_CALLABLE = "portwatch.client_address.client_address"
AXES_LOCKOUT_CALLABLE = "portwatch.lockouts.lockout_response"
# Each attempt during a lockout restarts it: the wait the page states holds, and
# someone still guessing stays out.
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = True
AXES_RESET_ON_SUCCESS = True
# Successful logins are in the audit log; axes' own access log would be a second, unbounded copy.
AXES_DISABLE_ACCESS_LOG = True
# Axes keeps the POSTed form of failed attempts (the password always masked): not the CSRF token either.
AXES_SENSITIVE_PARAMETERS = ["username", "ip_address", "csrfmiddlewaretoken"]
# Whom the lockout page tells people to ask, e.g. "the security team (#sec-ops)".
ADMIN_CONTACT = env_str("ADMIN_CONTACT", "") or "a PortWatch admin"
# API_TOKEN_FAILURE_LIMIT bad tokens from one address, each within API_TOKEN_BLOCK_MINUTES
# of the one before, refuse every token from it for API_TOKEN_BLOCK_MINUTES (portwatch.api.throttle).
API_TOKEN_FAILURE_LIMIT = env_int("API_TOKEN_FAILURE_LIMIT", 20, minimum=1)
API_TOKEN_BLOCK_MINUTES = env_int("API_TOKEN_BLOCK_MINUTES", 15, minimum=1)

# --- Scanning -----------------------------------------------------------------

# Path to the nmap binary; a wrapper script is fine (the test lab uses one to
# run nmap inside a network namespace).
NMAP_PATH = env_str("NMAP_PATH", "nmap")
# Fast discovery: the masscan binary (a wrapper script is fine, as for nmap),
# the highest rate (packets/s) any profile may sweep at, whatever it says,
# the seconds masscan waits for late answers after its last probe, and the
# addresses one sweep chunk covers (masscan is built for large ranges: one
# process per target is the norm, each waiting MASSCAN_WAIT_SECONDS once).
MASSCAN_PATH = env_str("MASSCAN_PATH", "masscan")
MASSCAN_MAX_RATE = env_int("MASSCAN_MAX_RATE", 10_000, minimum=1, maximum=100_000_000)
MASSCAN_WAIT_SECONDS = env_int("MASSCAN_WAIT_SECONDS", 3, minimum=1, maximum=300)
MASSCAN_CHUNK_SIZE = env_int("MASSCAN_CHUNK_SIZE", 65536, minimum=1, maximum=1 << 24)
# Working files of running scans (target lists, XML output).
SCAN_WORK_DIR = Path(env_str("SCAN_WORK_DIR", str(VAR_DIR / "scans")))

# The time-limit chain: nmap gives up on a host before the task's soft limit,
# the soft limit (clean failure) comes before the hard limit (worker child
# killed), and the broker redelivers an unacknowledged task only after the
# hard limit has passed, so a slow scan is never run twice at once.
NMAP_HOST_TIMEOUT = env_int("NMAP_HOST_TIMEOUT", 900, minimum=10)
SCAN_CHUNK_SOFT_TIME_LIMIT = env_int("SCAN_CHUNK_SOFT_TIME_LIMIT", 3600, minimum=30)
SCAN_CHUNK_TIME_LIMIT = env_int("SCAN_CHUNK_TIME_LIMIT", SCAN_CHUNK_SOFT_TIME_LIMIT + 120, minimum=31)
BROKER_VISIBILITY_TIMEOUT = env_int("BROKER_VISIBILITY_TIMEOUT", SCAN_CHUNK_TIME_LIMIT + 600, minimum=60)
if not NMAP_HOST_TIMEOUT < SCAN_CHUNK_SOFT_TIME_LIMIT < SCAN_CHUNK_TIME_LIMIT < BROKER_VISIBILITY_TIMEOUT:
    raise ImproperlyConfigured(
        "Time limits must satisfy NMAP_HOST_TIMEOUT < SCAN_CHUNK_SOFT_TIME_LIMIT < "
        "SCAN_CHUNK_TIME_LIMIT < BROKER_VISIBILITY_TIMEOUT; got "
        f"{NMAP_HOST_TIMEOUT} < {SCAN_CHUNK_SOFT_TIME_LIMIT} < {SCAN_CHUNK_TIME_LIMIT} < {BROKER_VISIBILITY_TIMEOUT}."
    )
# Tries a chunk gets when its worker is lost or it fails for a reason that
# may pass (nmap killed by a signal, memory or file descriptors short, the
# database restarting); SCAN_CHUNK_RETRY_SECONDS x 2^(n-1) after the n-th
# failure, at most SCAN_CHUNK_RETRY_MAX_SECONDS. Definite errors are not retried.
SCAN_CHUNK_MAX_ATTEMPTS = env_int("SCAN_CHUNK_MAX_ATTEMPTS", 3, minimum=1, maximum=20)
SCAN_CHUNK_RETRY_SECONDS = env_int("SCAN_CHUNK_RETRY_SECONDS", 30, minimum=1)
SCAN_CHUNK_RETRY_MAX_SECONDS = env_int("SCAN_CHUNK_RETRY_MAX_SECONDS", 600, minimum=1)
# Addresses per chunk: one chunk is one nmap process and one Celery task.
SCAN_CHUNK_SIZE = env_int("SCAN_CHUNK_SIZE", 256, minimum=1, maximum=65536)
# Most addresses one target may cover.
SCAN_MAX_TARGET_ADDRESSES = env_int("SCAN_MAX_TARGET_ADDRESSES", 65536, minimum=1)
# Re-probe a port before recording a change that would alert (opened, closed).
SCAN_CONFIRM_CHANGES = env_bool("SCAN_CONFIRM_CHANGES", True)
# A port that changes state FLAP_THRESHOLD times within FLAP_WINDOW_MINUTES is
# flapping: its changes are recorded, its alerts damped.
FLAP_THRESHOLD = env_int("FLAP_THRESHOLD", 4, minimum=2)
FLAP_WINDOW_MINUTES = env_int("FLAP_WINDOW_MINUTES", 24 * 60, minimum=1)
# On PostgreSQL, diff in set-based SQL (off: the batched ORM engine SQLite uses;
# both implement one specification, and the tests hold them to it).
INGEST_SQL_ENGINE = env_bool("INGEST_SQL_ENGINE", True)
# Files at least this large are parsed by several processes at once.
INGEST_PARALLEL_MIN_BYTES = env_int("INGEST_PARALLEL_MIN_BYTES", 16 * 1024 * 1024, minimum=0)
# Largest nmap XML file an import accepts, in bytes.
IMPORT_MAX_BYTES = env_int("IMPORT_MAX_BYTES", 100 * 1024 * 1024, minimum=1024)
# Host reports (listeners): a host's newest report counts for this many
# hours; older, the page says so and its listeners are not reconciled.
LISTENER_REPORT_MAX_AGE_HOURS = env_int("LISTENER_REPORT_MAX_AGE_HOURS", 24, minimum=1)
# Largest host report an upload or the API accepts, in bytes.
LISTENER_REPORT_MAX_BYTES = env_int("LISTENER_REPORT_MAX_BYTES", 16 * 1024 * 1024, minimum=1024)
# Certificates (certs): one expiring within this many days is a finding, and
# its alert (certificate_expiring, then certificate_expired) repeats every
# CERT_EXPIRY_REPEAT_DAYS per port and certificate, not on every scan.
CERT_EXPIRY_WARN_DAYS = env_int("CERT_EXPIRY_WARN_DAYS", 30, minimum=1, maximum=3650)
CERT_EXPIRY_REPEAT_DAYS = env_int("CERT_EXPIRY_REPEAT_DAYS", 7, minimum=1, maximum=3650)
# How often beat looks for certificates due an expiry alert (seconds).
CERT_EXPIRY_CHECK_SECONDS = env_int("CERT_EXPIRY_CHECK_SECONDS", 3600, minimum=60)
# How often beat asks the scheduler for due scans (seconds).
SCHEDULER_TICK_SECONDS = env_int("SCHEDULER_TICK_SECONDS", 10, minimum=1)
# Workers write a row this often; the health check calls one silent for 3 periods dead.
WORKER_HEARTBEAT_SECONDS = env_int("WORKER_HEARTBEAT_SECONDS", 10, minimum=1)
# The overview chart keeps a point this often.
SNAPSHOT_MINUTES = env_int("SNAPSHOT_MINUTES", 15, minimum=1)
# How often an open overview page refreshes its figures (HTMX polling).
OVERVIEW_POLL_SECONDS = env_int("OVERVIEW_POLL_SECONDS", 15, minimum=1)
# Everyone looking at the overview within this many seconds shares one
# reading of its figures and lists (0: every request reads its own).
OVERVIEW_CACHE_SECONDS = env_int("OVERVIEW_CACHE_SECONDS", 5, minimum=0, maximum=60)

# --- Alerts ---------------------------------------------------------------------

# Mail for email channels: Django's SMTP settings, from the environment.
EMAIL_HOST = env_str("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25, minimum=1, maximum=65535)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
EMAIL_USE_SSL = env_bool("EMAIL_USE_SSL", False)
EMAIL_TIMEOUT = env_int("EMAIL_TIMEOUT", 10, minimum=1)
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "PortWatch <portwatch@localhost>")
# How often the dispatcher looks for due notifications: retries, digests, and
# any whose immediate delivery the broker did not carry (seconds).
ALERT_DISPATCH_SECONDS = env_int("ALERT_DISPATCH_SECONDS", 5, minimum=1)
ALERT_DISPATCH_BATCH = env_int("ALERT_DISPATCH_BATCH", 200, minimum=1)
# Retries: base * 2^(n-1) seconds after the n-th failure, capped; then the failed list.
ALERT_RETRY_BASE_SECONDS = env_int("ALERT_RETRY_BASE_SECONDS", 30, minimum=1)
ALERT_RETRY_MAX_SECONDS = env_int("ALERT_RETRY_MAX_SECONDS", 3600, minimum=1)
ALERT_MAX_ATTEMPTS = env_int("ALERT_MAX_ATTEMPTS", 12, minimum=1)
# Webhook timeouts (seconds). A claim older than the lease is assumed dead and sent again.
ALERT_WEBHOOK_CONNECT_TIMEOUT = env_int("ALERT_WEBHOOK_CONNECT_TIMEOUT", 5, minimum=1)
ALERT_WEBHOOK_READ_TIMEOUT = env_int("ALERT_WEBHOOK_READ_TIMEOUT", 10, minimum=1)
ALERT_CLAIM_LEASE_SECONDS = env_int("ALERT_CLAIM_LEASE_SECONDS", 300, minimum=30)
if ALERT_CLAIM_LEASE_SECONDS <= ALERT_WEBHOOK_CONNECT_TIMEOUT + ALERT_WEBHOOK_READ_TIMEOUT + EMAIL_TIMEOUT:
    raise ImproperlyConfigured("ALERT_CLAIM_LEASE_SECONDS must be longer than the webhook and email timeouts.")
# A message lists this many changes, then links to the rest.
ALERT_MAX_CHANGES_PER_MESSAGE = env_int("ALERT_MAX_CHANGES_PER_MESSAGE", 50, minimum=1)
# The "Local log file" channel appends here.
ALERT_LOG_FILE = Path(env_str("ALERT_LOG_FILE", str(VAR_DIR / "alerts.log")))

# --- Celery ---------------------------------------------------------------------

REDIS_URL = env_str("REDIS_URL")
if REDIS_URL:
    CELERY_BROKER_URL = REDIS_URL
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": BROKER_VISIBILITY_TIMEOUT}
else:
    _broker_dir = VAR_DIR / "broker"
    for _sub in ("queue", "control", "processed"):
        (_broker_dir / _sub).mkdir(parents=True, exist_ok=True)
    # A host name, which the filesystem transport ignores, or kombu warns at every connection.
    CELERY_BROKER_URL = "filesystem://localhost/"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "control_folder": str(_broker_dir / "control"),
        "processed_folder": str(_broker_dir / "processed"),
        "store_processed": False,
    }
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# State lives in the database; results are never read back from Celery.
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# A scan keeps running when the broker connection drops (Redis restarting):
# cancelling it would throw away an hour of nmap for a blip. Its result is
# ingested once whatever the broker does with the message: a copy delivered
# again finds the chunk running (and waits) or finished (and does nothing).
CELERY_WORKER_CANCEL_LONG_RUNNING_TASKS_ON_CONNECTION_LOSS = False
CELERY_TASK_DEFAULT_QUEUE = "default"
# Nothing in PortWatch sends workers broadcast commands (state is in the
# database), and a remote scanner's broker credentials must not let it shut
# down or reconfigure the central workers.
CELERY_WORKER_ENABLE_REMOTE_CONTROL = False
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = TIME_ZONE
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")
# Delivery has its own queue and worker: see alerts.tasks.
CELERY_TASK_ROUTES = {"alerts.tasks.*": {"queue": "alerts"}}
CELERY_BEAT_SCHEDULE = {
    "alerts-dispatch": {
        "task": "alerts.tasks.dispatch",
        "schedule": float(ALERT_DISPATCH_SECONDS),
        "options": {"expires": float(ALERT_DISPATCH_SECONDS)},
    },
    # A vantage point's workers silent, or back: an alert (alerts.watch).
    "alerts-watch-vantage-points": {
        "task": "alerts.tasks.watch_vantage_points",
        "schedule": 60.0,
        "options": {"expires": 60.0},
    },
    # The overview chart's history.
    "inventory-snapshot": {
        "task": "inventory.tasks.take_snapshot",
        "schedule": SNAPSHOT_MINUTES * 60.0,
        "options": {"expires": SNAPSHOT_MINUTES * 60.0},
    },
    # The overview's kept counts: fold what the triggers appended (tallies.maintenance.compact).
    "tallies-compact": {
        "task": "tallies.tasks.compact",
        "schedule": 60.0,
        "options": {"expires": 60.0},
    },
    # Segmentation rules saved (judged by a worker, reach.segmentation_writes), removed or expired
    # (their reach falls to the next rules, reach.segmentation.expire).
    "reach-segmentation-rules": {
        "task": "reach.tasks.settle_segmentation_rules",
        "schedule": 60.0,
        "options": {"expires": 60.0},
    },
    # Host reports: hosts scanned since the last sweep are judged again (listeners.tasks).
    "listeners-judge-scanned-hosts": {
        "task": "listeners.tasks.judge_scanned_hosts",
        "schedule": 300.0,
        "options": {"expires": 300.0},
    },
    # Certificates expiring or expired: a change per port and certificate every
    # CERT_EXPIRY_REPEAT_DAYS at most (certs.expiry).
    "certs-expiry": {
        "task": "certs.tasks.record_expiry",
        "schedule": float(CERT_EXPIRY_CHECK_SECONDS),
        "options": {"expires": float(CERT_EXPIRY_CHECK_SECONDS)},
    },
    # A tick that waited longer than one period is dropped: the next does its work.
    "scans-tick": {
        "task": "scans.tasks.tick",
        "schedule": float(SCHEDULER_TICK_SECONDS),
        "options": {"expires": float(SCHEDULER_TICK_SECONDS)},
    },
}

# The cache holds counters every web process must share (the API's bad-token
# throttle): Redis when there is one, otherwise files under var/ (`make run`
# starts two gunicorn workers). Nothing in PortWatch empties the whole cache:
# on Redis that would empty the broker's database too.
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "portwatch",
        }
    }
else:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": str(VAR_DIR / "cache"),
            "OPTIONS": {"MAX_ENTRIES": 10000},
        }
    }

LOG_LEVEL = env_str("LOG_LEVEL", "INFO").upper()
# What happens routinely (beat sending its ticks, a task received and done, a
# login library starting) is shown at LOG_LEVEL=DEBUG only: at INFO the console
# says what happened (scans finished, changes, alerts sent) and what went wrong.
_ROUTINE = "DEBUG" if LOG_LEVEL == "DEBUG" else "WARNING"
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "filters": {
        "beat_ticks": {"()": "portwatch.log_filters.DropRoutine", "prefixes": ["Scheduler: Sending due task"]},
    },
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        # "beat: Starting..." stays; its ticks go.
        "celery.beat": {"filters": [] if LOG_LEVEL == "DEBUG" else ["beat_ticks"]},
        **{
            name: {"level": _ROUTINE}
            for name in (
                "axes",
                "celery.app.trace",  # "Task ... succeeded" (failures are errors: still shown)
                "celery.worker.strategy",  # "Task ... received"
                "celery.worker.consumer.connection",  # "Connected to ..."
                "celery.worker.consumer.mingle",
                "scans.nmap_runner",  # "starting nmap: ..." for every chunk
            )
        },
    },
}

# --- REST API (portwatch.api) ---------------------------------------------------

REST_FRAMEWORK = {
    # Token first: a request without credentials gets 401 and a WWW-Authenticate header.
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "portwatch.api.auth.TokenOrBearerAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    # Every endpoint needs a user with a role; views name the role of each action.
    "DEFAULT_PERMISSION_CLASSES": [
        "rest_framework.permissions.IsAuthenticated",
        "portwatch.api.auth.RolePermission",
    ],
    # JSON only: the browsable API needs inline script, which the CSP forbids (docs: /api/docs/).
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_PAGINATION_CLASS": "portwatch.api.base.NoCountPagination",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "portwatch.api.base.exception_handler",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "PortWatch API",
    "DESCRIPTION": "The port inventory, its policy, scans and alerts. Every call needs a token "
    "(`Authorization: Token <key>`, from your account's API token page) and a role.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated", "portwatch.api.auth.RolePermission"],
    "COMPONENT_SPLIT_REQUEST": True,
    # Swagger UI from drf-spectacular-sidecar's static files: no CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "SWAGGER_UI_SETTINGS": {"persistAuthorization": False, "tryItOutEnabled": False},
    # Several models have a "kind", a "status" or a "scope": each choice set gets its own name.
    "ENUM_NAME_OVERRIDES": {
        "ProtocolEnum": "inventory.choices.Protocol",
        "RuleProtocolEnum": "inventory.choices.RULE_PROTOCOL_CHOICES",
        "PolicyStatusEnum": "inventory.choices.PolicyStatus",
        "HostStatusEnum": "inventory.choices.HostStatus",
        "ScopeEnum": "inventory.choices.RuleScope",
        "ChangeKindEnum": "scans.choices.ChangeKind",
        "RunStatusEnum": "scans.choices.RunStatus",
        "ChunkStatusEnum": "scans.choices.ChunkStatus",
        "AttemptOutcomeEnum": "scans.choices.AttemptOutcome",
        "ScopeActionEnum": "scans.choices.ScopeAction",
        "ChannelKindEnum": "alerts.choices.ChannelKind",
        "NotificationKindEnum": "alerts.choices.NotificationKind",
        "NotificationStatusEnum": "alerts.choices.NotificationStatus",
    },
}
