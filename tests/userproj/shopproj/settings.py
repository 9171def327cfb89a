"""An ordinary Django project's settings. Its real database is never touched by Perf Lab."""
SECRET_KEY = "test-only-not-secret"
DEBUG = True
USE_TZ = True
INSTALLED_APPS = ["django.contrib.contenttypes", "shop"]
ROOT_URLCONF = "shopproj.urls"
DATABASES = {"default": {"ENGINE": "django.db.backends.postgresql", "NAME": "shop_production",
                         "HOST": "db.invalid", "USER": "shop", "PASSWORD": "do-not-use"}}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
