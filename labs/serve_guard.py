"""What keeps `labs serve` to the person who started it.

The served app runs with DEBUG, django-silk and the debug toolbar: every query, every profile,
every setting. It binds loopback, but loopback is shared (another account, a browser tab on a site
that rebinds its DNS to 127.0.0.1). So:

- `ALLOWED_HOSTS` is the loopback names (and the one host `--allow-remote` named): a rebound
  Host header is refused;
- `TokenGuard` admits a browser only after it opened the URL `labs serve` printed (`?labs-token=…`,
  a fresh secret each run): it then holds a cookie; everything else gets 403 with what to do;
- `SecretsFilter` keeps service URLs (their passwords) and cache locations out of DEBUG's error
  pages, beside the settings Django already hides.
"""
from __future__ import annotations

import hmac
import os
import re

from django.http import HttpResponseForbidden, HttpResponseRedirect
from django.views.debug import SafeExceptionReporterFilter

TOKEN_PARAM = "labs-token"
COOKIE = "labs_serve"


class TokenGuard:
    def __init__(self, get_response) -> None:
        self.get_response = get_response
        self.token = os.environ.get("LABS_SERVE_TOKEN", "")

    def __call__(self, request):
        if not self.token:
            return HttpResponseForbidden("labs serve started without a token: restart it with `labs serve`",
                                         content_type="text/plain")
        given = request.GET.get(TOKEN_PARAM)
        if given is not None and hmac.compare_digest(given, self.token):
            query = request.GET.copy()
            query.pop(TOKEN_PARAM)
            target = request.path + (f"?{query.urlencode()}" if query else "")
            response = HttpResponseRedirect(target)
            response.set_cookie(COOKIE, self.token, httponly=True, samesite="Strict")
            return response
        if hmac.compare_digest(request.COOKIES.get(COOKIE, ""), self.token):
            return self.get_response(request)
        return HttpResponseForbidden("this is a `labs serve` session: open the URL it printed "
                                     f"(with ?{TOKEN_PARAM}=…) in this browser first", content_type="text/plain")


class SecretsFilter(SafeExceptionReporterFilter):
    hidden_settings = re.compile(
        "API|AUTH|TOKEN|KEY|SECRET|PASS|SIGNATURE|HTTP_COOKIE|_URL$|^LOCATION$|^CACHES$|^DATABASES$", flags=re.I)
