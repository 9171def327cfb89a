"""memcached with a password: the lab's memcached runs with ASCII authentication (`-Y authfile`), so
another local account cannot read or poison its cache; this is the Django backend that logs in.

memcached's ASCII protocol authenticates a connection with one `set` whose value is `user password`
(reply `STORED`); anything else first gets `CLIENT_ERROR unauthenticated`. Only the connect path
differs from Django's own `PyMemcacheCache`: every get/set afterwards is the same pymemcache code,
so what the caching scenario times is the stock backend's per-operation cost.

    CACHES = {"memcached": {"BACKEND": "harness.stack.memcache_auth.PyMemcacheAuthCache",
                            "LOCATION": "127.0.0.1:11211",
                            "OPTIONS": {"username": "perflab", "password": "…"}}}
"""
from __future__ import annotations

from django.core.cache.backends.memcached import PyMemcacheCache
from pymemcache.client.base import Client
from pymemcache.client.hash import HashClient
from pymemcache.exceptions import MemcacheClientError


class _AuthClient(Client):
    credentials: tuple[str, str] = ("", "")

    def _connect(self) -> None:
        super()._connect()
        user, password = self.credentials
        payload = f"{user} {password}".encode()
        self.sock.sendall(b"set auth 0 0 %d\r\n%s\r\n" % (len(payload), payload))
        reply = b""
        while not reply.endswith(b"\r\n") and len(reply) < 256:
            chunk = self.sock.recv(256)
            if not chunk:
                break
            reply += chunk
        if reply != b"STORED\r\n":
            self.close()
            raise MemcacheClientError(f"memcached refused the login: {reply.strip().decode(errors='replace')}")


def client_class(username: str, password: str) -> type[HashClient]:
    """A pymemcache HashClient whose connections log in as `username`."""
    auth = type("AuthClient", (_AuthClient,), {"credentials": (username, password)})
    return type("AuthHashClient", (HashClient,), {"client_class": auth})


class PyMemcacheAuthCache(PyMemcacheCache):
    """Django's PyMemcacheCache, logging each connection in (OPTIONS username / password)."""

    def __init__(self, server, params):
        options = dict(params.get("OPTIONS") or {})
        username, password = options.pop("username", ""), options.pop("password", "")
        super().__init__(server, {**params, "OPTIONS": options})
        self._class = client_class(username, password)
