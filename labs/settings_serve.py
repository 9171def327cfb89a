"""Settings for `labs serve`: the lab app with django-silk and django-debug-toolbar, for people
clicking through the endpoints (workshops). Never used by measured runs: both tools add work to
every request, which is exactly what they are for.
"""
from labs.settings import *  # noqa: F401,F403
from labs.settings import INSTALLED_APPS, MIDDLEWARE, TEMPLATES

DEBUG = True
import os  # noqa: E402

# loopback names only (a DNS-rebound Host header is refused), plus the host --allow-remote named
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "[::1]", *filter(None, [os.environ.get("LABS_SERVE_HOST")])]
DEFAULT_EXCEPTION_REPORTER_FILTER = "labs.serve_guard.SecretsFilter"
INTERNAL_IPS = ["127.0.0.1"]
ROOT_URLCONF = "labs.urls_serve"
STATIC_URL = "/static/"

INSTALLED_APPS = [*INSTALLED_APPS, "django.contrib.staticfiles", "debug_toolbar", "silk"]
MIDDLEWARE = ["labs.serve_guard.TokenGuard", "debug_toolbar.middleware.DebugToolbarMiddleware", "silk.middleware.SilkyMiddleware", *MIDDLEWARE]
TEMPLATES = [{**TEMPLATES[0], "OPTIONS": {"context_processors": [
    "django.template.context_processors.request", "django.template.context_processors.debug"]}}]
SILKY_PYTHON_PROFILER = True
SILKY_AUTHENTICATION = False
SILKY_AUTHORISATION = False
DEBUG_TOOLBAR_CONFIG = {"SHOW_TOOLBAR_CALLBACK": lambda request: request.META.get("REMOTE_ADDR") in INTERNAL_IPS}
