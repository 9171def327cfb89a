"""Settings for measuring a user's own Django project (`labs run … --django-settings myproj.settings`).

Everything comes from the user's settings module (LABS_USER_SETTINGS), except where the data
lives: every database alias points at the lab's stack, in a database of the lab's own named after
the project (their real databases are never touched), and the default cache at the stack's
Redis with its own key prefix. DEBUG is off while measuring.
"""
from __future__ import annotations

import importlib
import os

from harness.project.djangoenv import database_from_url, user_database_url

_user = importlib.import_module(os.environ["LABS_USER_SETTINGS"])
globals().update({k: v for k, v in vars(_user).items() if k.isupper()})

_LAB_URL = user_database_url(os.environ["DATABASE_URL"], os.environ["LABS_USER_SETTINGS"])

DATABASES = {alias: {**database_from_url(_LAB_URL), "TEST": cfg.get("TEST", {})}
             for alias, cfg in (getattr(_user, "DATABASES", None) or {"default": {}}).items()}
if os.environ.get("REDIS_URL"):
    CACHES = {**getattr(_user, "CACHES", {}),
              "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache",
                          "LOCATION": os.environ["REDIS_URL"], "KEY_PREFIX": "labs-user"}}
DEBUG = False
ALLOWED_HOSTS = [*getattr(_user, "ALLOWED_HOSTS", []), "127.0.0.1", "localhost", "testserver"]
