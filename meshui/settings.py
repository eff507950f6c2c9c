"""Settings for meshui, driven entirely by environment variables (docs/configuration.md)."""

from __future__ import annotations

import secrets
import warnings
from datetime import timedelta
from pathlib import Path

import dj_database_url

from meshui.alerts.schedule import aligned
from meshui.channel_layers import DEFAULT_MAX_CONNECTIONS, channel_layers_for
from meshui.dashboard.trace_links import validate_template
from meshui.env import EnvError, env_bool, env_float, env_int, env_list, env_str
from meshui.tls import TlsFilesError, load_tls_files
from proxies.identity.spiffe import DEFAULT_TRUST_DOMAIN, trust_domain_problem
from proxies.mesh.schema import ENDPOINTS_MAX_BYTES

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = BASE_DIR / "var"


def _dev_secret_key() -> str:
    """A random key kept in var/ so sessions survive restarts; checks warn (meshui.W001)."""
    path = VAR_DIR / "dev-secret-key"
    try:
        VAR_DIR.mkdir(exist_ok=True)
        if not path.exists():
            path.write_text(secrets.token_urlsafe(50))
            path.chmod(0o600)
        return path.read_text().strip()
    except OSError:
        return secrets.token_urlsafe(50)


SECRET_KEY = env_str("MESHUI_SECRET_KEY") or _dev_secret_key()
MESHUI_DEFAULT_SECRET_KEY = not env_str("MESHUI_SECRET_KEY")
DEBUG = env_bool("MESHUI_DEBUG", False)
ALLOWED_HOSTS = env_list("MESHUI_ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]")
CSRF_TRUSTED_ORIGINS = env_list("MESHUI_CSRF_TRUSTED_ORIGINS", "")

# Read-only pages and GET API endpoints open without login when true; writes never are.
MESHUI_PUBLIC_READ = env_bool("MESHUI_PUBLIC_READ", False)
MESHUI_HEARTBEAT_INTERVAL = env_int("MESHUI_HEARTBEAT_INTERVAL", 5, minimum=1, maximum=3600)
# Seconds a sidecar may take to ACK a state it was sent before it shows STALE (xDS).
MESHUI_SYNC_TIMEOUT = env_int("MESHUI_SYNC_TIMEOUT", 5, minimum=1, maximum=3600)
# The largest endpoints message meshui sends (docs/control-channel.md); never above what a
# sidecar accepts (proxies/mesh/schema.py), so a too-big mesh is an error here, not a
# disconnect of every sidecar.
MESHUI_CONTROL_ENDPOINTS_MAX_BYTES = env_int(
    "MESHUI_CONTROL_ENDPOINTS_MAX_BYTES", ENDPOINTS_MAX_BYTES, minimum=1024,
    maximum=ENDPOINTS_MAX_BYTES,
)

REDIS_URL = env_str("REDIS_URL")
# The graph API, page and socket show at most this many services, the busiest first; the
# rest are counted in the graph's ``hidden`` (docs/api.md).
MESHUI_GRAPH_MAX_NODES = env_int("MESHUI_GRAPH_MAX_NODES", 100, minimum=1, maximum=10000)
# Seconds between evaluations of the alert rules (Celery beat; docs/alerts.md), also the
# step of a rule's backtest.
MESHUI_ALERTS_INTERVAL_S = env_int("MESHUI_ALERTS_INTERVAL_S", 10, minimum=1, maximum=3600)
# Notifications (docs/alerts.md, "Notifications"): seconds between passes over the groups
# (each evaluation is followed by one too), the first retry's backoff (doubling after), and
# the attempts before a message is given up and its contact point marked failing.
MESHUI_ALERTS_DISPATCH_S = env_int("MESHUI_ALERTS_DISPATCH_S", 5, minimum=1, maximum=300)
MESHUI_NOTIFY_BACKOFF_S = env_float("MESHUI_NOTIFY_BACKOFF_S", 2.0, minimum=0.01, maximum=600.0)
MESHUI_NOTIFY_MAX_ATTEMPTS = env_int("MESHUI_NOTIFY_MAX_ATTEMPTS", 8, minimum=1, maximum=100)
# Where people reach this meshui: the links in notifications (Alertmanager's externalURL).
MESHUI_EXTERNAL_URL = env_str("MESHUI_EXTERNAL_URL", "http://localhost:8000").rstrip("/")
# Email contact points go through Django's SMTP backend with these.
EMAIL_HOST = env_str("MESHUI_EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("MESHUI_EMAIL_PORT", 25, minimum=1, maximum=65535)
EMAIL_HOST_USER = env_str("MESHUI_EMAIL_USER")
EMAIL_HOST_PASSWORD = env_str("MESHUI_EMAIL_PASSWORD")
EMAIL_USE_TLS = env_bool("MESHUI_EMAIL_STARTTLS")
EMAIL_USE_SSL = env_bool("MESHUI_EMAIL_SSL")
MESHUI_ALERTS_FROM_EMAIL = env_str("MESHUI_ALERTS_FROM_EMAIL", "meshui-alerts@localhost")
# Named apart from EMAIL_BACKEND, which test runners swap for an in-memory one: alert email
# is SMTP wherever it runs, the suite's included (it starts a real SMTP server).
MESHUI_ALERTS_EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"


def _trace_link_template(name: str) -> str:
    """The template checked now, so a bad one stops the start naming the variable."""
    value = env_str(name).strip()
    if not value:
        return ""
    try:
        return validate_template(value)
    except ValueError as exc:
        raise EnvError(f"{name} {exc}") from None


# Where a trace's own page is in the long-term backend the collector forwards to, with
# {trace_id} for the id (meshui/dashboard/trace_links.py); empty: no links.
MESHUI_TRACE_LINK_TEMPLATE = _trace_link_template("MESHUI_TRACE_LINK_TEMPLATE")


def _trust_domain(name: str) -> str:
    value = env_str(name, DEFAULT_TRUST_DOMAIN)
    problem = trust_domain_problem(value)
    if problem is not None:
        raise EnvError(f"{name} {problem}")
    return value


def _ca_files() -> tuple[str, str]:
    cert, key = env_str("MESHUI_CA_CERT"), env_str("MESHUI_CA_KEY")
    if bool(cert) != bool(key):
        raise EnvError("MESHUI_CA_CERT and MESHUI_CA_KEY go together: set both (the operator's "
                       "intermediate and its key) or neither (meshui generates its own root)")
    return cert, key


# Identity (docs/security.md): the SPIFFE trust domain of every sidecar's certificate; the
# generated root's directory, or the operator's intermediate (its chain to the root, and
# its key); more roots to trust during a CA rotation; a leaf certificate's lifetime.
MESHUI_TRUST_DOMAIN = _trust_domain("MESHUI_TRUST_DOMAIN")
MESHUI_CA_DIR = env_str("MESHUI_CA_DIR") or str(VAR_DIR / "ca")
MESHUI_CA_CERT, MESHUI_CA_KEY = _ca_files()
MESHUI_CA_EXTRA_ROOTS = env_str("MESHUI_CA_EXTRA_ROOTS")
MESHUI_CERT_LIFETIME_S = env_int("MESHUI_CERT_LIFETIME_S", 86400, minimum=2,
                                 maximum=366 * 86400)
# A new join token's lifetime unless its creator gives one (docs/security.md, "Joining").
MESHUI_JOIN_TOKEN_TTL_S = env_int("MESHUI_JOIN_TOKEN_TTL_S", 30 * 86400, minimum=60,
                                  maximum=365 * 86400)
# The pool size of the channel layer and of each asyncio Redis client (meshui.redis_clients).
MESHUI_REDIS_MAX_CONNECTIONS = env_int(
    "MESHUI_REDIS_MAX_CONNECTIONS", DEFAULT_MAX_CONNECTIONS, minimum=10)

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "axes",
    # django-ninja's templates and static files: the API docs page (Swagger UI) served
    # from our own origin, never a CDN.
    "ninja",
    "meshui.accounts",
    "meshui.registry",
    "meshui.dashboard",
    "meshui.policy",
    "meshui.alerts",
    "meshui.identity",
]

MIDDLEWARE = [
    # Outermost, so it also sees the responses made further out: WhiteNoise's static files
    # and the 400 of a disallowed Host.
    "meshui.security.SecurityHeadersMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, as django-axes asks: it turns a lockout raised by its backend into the response.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "meshui.urls"
ASGI_APPLICATION = "meshui.asgi.application"

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
                "meshui.accounts.context_processors.read_access",
            ],
        },
    },
]

DATABASE_URL = env_str("DATABASE_URL")
# SQLite, however it is named: consumers, views and Celery write from several threads and
# processes. IMMEDIATE takes the write lock at BEGIN (a DEFERRED transaction that reads and
# then writes fails at once with "database is locked" when another writer holds it, rather
# than waiting), and WAL lets readers go on while one writes.
SQLITE_OPTIONS = {"timeout": 20, "transaction_mode": "IMMEDIATE",
                  "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"}
if DATABASE_URL:
    # No persistent connections: under ASGI, connections opened in sync_to_async worker
    # threads would outlive their requests (Django's docs: disable them under ASGI).
    DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=0)}
else:
    VAR_DIR.mkdir(exist_ok=True)
    DATABASES = {
        "default": {"ENGINE": "django.db.backends.sqlite3", "NAME": str(VAR_DIR / "meshui.sqlite3")}
    }
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["OPTIONS"] = {**SQLITE_OPTIONS, **DATABASES["default"].get("OPTIONS", {})}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

CHANNEL_LAYERS = channel_layers_for(REDIS_URL, MESHUI_REDIS_MAX_CONNECTIONS)

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# django-axes first: it refuses a locked-out username+address before any password is checked.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
# Failed-login rate limiting (issue 6): after MESHUI_LOGIN_FAILURE_LIMIT failures for one
# username from one address, that pair is refused (429, the login page says until when) for
# MESHUI_LOGIN_COOLOFF seconds after its last failure. Every failure is counted in axes'
# AccessAttempt / AccessFailureLog tables (the admin shows them; `manage.py axes_reset`).
MESHUI_LOGIN_LOCKOUT = env_bool("MESHUI_LOGIN_LOCKOUT", True)
AXES_ENABLED = MESHUI_LOGIN_LOCKOUT
AXES_FAILURE_LIMIT = env_int("MESHUI_LOGIN_FAILURE_LIMIT", 5, minimum=1, maximum=1000)
AXES_COOLOFF_TIME = timedelta(
    seconds=env_int("MESHUI_LOGIN_COOLOFF", 900, minimum=1, maximum=7 * 24 * 3600))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_LOCKOUT_CALLABLE = "meshui.accounts.lockout.login_lockout"
AXES_HTTP_RESPONSE_CODE = 429
# Tries made while locked out do not push the end of the lockout back: the time the login
# page promises holds.
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False
AXES_RESET_ON_SUCCESS = True
AXES_ENABLE_ACCESS_FAILURE_LOG = True
# The peer address, never X-Forwarded-For (a client could rotate it to dodge the limit);
# behind a reverse proxy, run uvicorn with --proxy-headers --forwarded-allow-ips=<proxy>.
AXES_CLIENT_IP_CALLABLE = "meshui.accounts.lockout.client_ip"

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "graph"
LOGOUT_REDIRECT_URL = "graph"

# Browser hardening. Content-Security-Policy and Permissions-Policy come from
# meshui.security; these are Django's own (SecurityMiddleware, XFrameOptionsMiddleware).
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"

# HTTPS (docs/security.md, "The dashboard over HTTPS"). MESHUI_TLS_CERT and MESHUI_TLS_KEY
# are what uvicorn serves with (--ssl-certfile, --ssl-keyfile), checked here so a wrong pair
# stops the start naming the file; MESHUI_BEHIND_TLS_PROXY is for TLS ended at a load
# balancer that sets X-Forwarded-Proto. Either way the browser only ever reaches meshui over
# HTTPS, so its cookies are Secure and HSTS is sent (on HTTPS responses only: Django's
# SecurityMiddleware), and the control channel refuses a plaintext handshake unless DEBUG
# (meshui/registry/plaintext.py).
try:
    MESHUI_TLS = load_tls_files(env_str("MESHUI_TLS_CERT"), env_str("MESHUI_TLS_KEY"))
except TlsFilesError as exc:
    raise EnvError(str(exc)) from None
MESHUI_BEHIND_TLS_PROXY = env_bool("MESHUI_BEHIND_TLS_PROXY", False)
MESHUI_HTTPS = MESHUI_TLS is not None or MESHUI_BEHIND_TLS_PROXY
if MESHUI_BEHIND_TLS_PROXY:
    # Trusted as Django trusts it: the proxy must set (and strip from clients) this header.
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SESSION_COOKIE_SECURE = MESHUI_HTTPS
CSRF_COOKIE_SECURE = MESHUI_HTTPS
SESSION_COOKIE_HTTPONLY = True  # Django's default, kept explicit: no script reads the session
# The CSRF cookie stays readable: static/policy/common.js sends it as X-CSRFToken on the
# API's writes. It is no secret from a script that runs here (the page holds the token too).
CSRF_COOKIE_HTTPONLY = False
SECURE_HSTS_SECONDS = env_int(
    "MESHUI_HSTS_SECONDS", 31536000 if MESHUI_HTTPS else 0, minimum=0, maximum=2 * 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("MESHUI_HSTS_INCLUDE_SUBDOMAINS", False)
SECURE_SSL_REDIRECT = env_bool("MESHUI_SECURE_SSL_REDIRECT", False)

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = Path(env_str("MESHUI_STATIC_ROOT") or BASE_DIR / "staticfiles")
STATICFILES_DIRS = [BASE_DIR / "static"]
STATICFILES_FINDERS = [
    "django.contrib.staticfiles.finders.FileSystemFinder",
    "django.contrib.staticfiles.finders.AppDirectoriesFinder",
    # Plotly.js straight from the installed plotly package: no CDN, no copy in the repo.
    "meshui.dashboard.staticfinders.PlotlyFinder",
]
# Serve straight from the finders: the demo needs no collectstatic.
WHITENOISE_USE_FINDERS = True
# WhiteNoise warns about a missing STATIC_ROOT even when it serves from the finders.
try:
    STATIC_ROOT.mkdir(exist_ok=True)
except OSError:
    pass
# Under ASGI Django warns that WhiteNoise streams files synchronously (it works, in a thread).
warnings.filterwarnings("ignore", message="StreamingHttpResponse must consume synchronous")

CELERY_BROKER_URL = REDIS_URL or None
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
CELERY_TIMEZONE = TIME_ZONE
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BEAT_SCHEDULE = {
    "sweep-stale-instances": {
        "task": "meshui.registry.tasks.sweep_stale_instances",
        "schedule": 10.0,
        # A sweep older than its period is pointless: the next one is already due.
        "options": {"expires": 10.0},
    },
    "evaluate-alerts": {
        "task": "meshui.alerts.tasks.evaluate_alerts",
        # At each multiple of the interval, a quarter into it (at most 1 s): well inside
        # the evaluation cycle it belongs to (meshui/alerts/schedule.py).
        "schedule": aligned(MESHUI_ALERTS_INTERVAL_S, min(1.0, MESHUI_ALERTS_INTERVAL_S / 4)),
        # A cycle's run that waited past its interval is stale: the next cycle is due.
        "options": {"expires": float(MESHUI_ALERTS_INTERVAL_S)},
    },
    "dispatch-notifications": {
        "task": "meshui.alerts.tasks.dispatch_notifications",
        "schedule": float(MESHUI_ALERTS_DISPATCH_S),
        "options": {"expires": float(MESHUI_ALERTS_DISPATCH_S)},
    },
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "loggers": {
        "meshui": {"handlers": ["console"], "level": env_str("MESHUI_LOG_LEVEL", "INFO")},
        # A 500 is logged with its traceback (Django's own logger, which has no handler here).
        "django.request": {"handlers": ["console"], "level": "ERROR", "propagate": False},
    },
}
CSRF_FAILURE_VIEW = "meshui.api.errors.csrf_failure"
