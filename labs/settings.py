"""Settings for the lab's Django project, built from the stack's URLs in the environment.

The harness exports DATABASE_URL, REDIS_URL (and MEMCACHED_URL when the stack has memcached)
before Django starts; the same module serves Gunicorn workers in load scenarios.
DEBUG is False: measurements must not pay for Django's debug cursor.
"""
from __future__ import annotations

import importlib.util
import os
import secrets
import urllib.parse
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent

from harness.project.djangoenv import database_from_url  # noqa: E402 - one reading of the stack's URLs


SECRET_KEY = os.environ.get("LABS_SECRET_KEY") or secrets.token_urlsafe(40)
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "testserver"]
ROOT_URLCONF = "labs.urls"
USE_TZ = True
TIME_ZONE = "UTC"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.postgres",
    "labs.bookstore",
    "labs.workshop",
    "labs.jobs",
    "django_tasks_db",  # the database-backed worker of Django's tasks framework (the tasks scenario)
]
if importlib.util.find_spec("django.tasks") is None:
    # Django 6 has django.tasks built in; on 5.2 the django-tasks backport provides it, as an app
    INSTALLED_APPS.insert(INSTALLED_APPS.index("django_tasks_db"), "django_tasks")
TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}
if os.environ.get("LABS_WORKSHOP_APP"):
    # a participant's workshop folder (labs workshop init): its exercise-2 app, label `workshop`,
    # takes the place of the lab's own copy
    import sys

    sys.path.insert(0, str(Path(os.environ["LABS_WORKSHOP_APP"]).parent))
    INSTALLED_APPS[INSTALLED_APPS.index("labs.workshop")] = "workshop_app"
MIDDLEWARE = [
    "django.middleware.common.CommonMiddleware",
]
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {"context_processors": []},
    }
]

DATABASES = {"default": database_from_url(os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/perflab"))}

# Connection handling, set per variant by the pooling scenario (and by anyone deploying the lab):
#   LABS_CONN_MAX_AGE    0 = a new connection per request (Django's default); N = keep N seconds
#   LABS_DB_POOL         "min:max:timeout" = Django's native psycopg pool, per process
#   LABS_PGBOUNCER_TX    1 = DATABASE_URL points at PgBouncer in transaction pooling: no server-side
#                        cursors and no prepared statements (PgBouncer < 1.21 cannot track them)
if os.environ.get("LABS_DB_POOL"):
    _min, _max, _timeout = os.environ["LABS_DB_POOL"].split(":")
    DATABASES["default"]["CONN_MAX_AGE"] = 0  # the pool owns connection lifetime
    DATABASES["default"]["OPTIONS"]["pool"] = {"min_size": int(_min), "max_size": int(_max),
                                               "timeout": float(_timeout)}
if os.environ.get("LABS_PGBOUNCER_TX") == "1":
    DATABASES["default"]["DISABLE_SERVER_SIDE_CURSORS"] = True
    DATABASES["default"]["OPTIONS"]["prepare_threshold"] = None

# Cache aliases: "default" is Redis (Valkey) through Django's built-in RedisCache (no extra
# dependency, uses redis-py's pool); "locmem" is per-process; "memcached" exists when the stack has it.
CACHES: dict[str, dict] = {
    "locmem": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "labs"},
}
if os.environ.get("REDIS_URL"):
    CACHES["default"] = {"BACKEND": "django.core.cache.backends.redis.RedisCache",
                         "LOCATION": os.environ["REDIS_URL"], "KEY_PREFIX": "labs"}
else:
    CACHES["default"] = CACHES["locmem"]
if os.environ.get("MEMCACHED_URL"):
    _mc = urllib.parse.urlsplit(os.environ["MEMCACHED_URL"])
    CACHES["memcached"] = {"BACKEND": "django.core.cache.backends.memcached.PyMemcacheCache",
                           "LOCATION": f"{_mc.hostname}:{_mc.port or 11211}", "KEY_PREFIX": "labs"}
    if _mc.username:
        # the lab's own memcached runs with ASCII auth (`-Y`): the same backend, logging in on connect
        CACHES["memcached"]["BACKEND"] = "harness.stack.memcache_auth.PyMemcacheAuthCache"
        CACHES["memcached"]["OPTIONS"] = {"username": urllib.parse.unquote(_mc.username),
                                          "password": urllib.parse.unquote(_mc.password or "")}

LOGGING = {"version": 1, "disable_existing_loggers": False,
           "handlers": {"null": {"class": "logging.NullHandler"},
                        "stdout": {"class": "logging.StreamHandler", "stream": "ext://sys.stdout"}},
           "root": {"handlers": ["null"], "level": "WARNING"},
           # the tasks framework's db_worker: its start and each task in its log (the tasks scenario
           # waits for its "Starting worker" line)
           "loggers": {name: {"handlers": ["stdout"], "level": "INFO", "propagate": False}
                       for name in ("django_tasks_db", "django.tasks", "django_tasks")}}
