"""Service URLs: read them once, rewrite them without losing parts, and never print a secret.

A URL the lab is given (DATABASE_URL, REDIS_URL, a `labs load` target) may carry a password in its
userinfo and tokens in its query. Everything that stores or prints a URL goes through `redact`
(services) or `redact_target` (load targets); everything that connects goes through
`pg_connect_kwargs`, which decodes what the URL encodes (a `/`, `#` or `@` in a password is written
%2F, %23, %40) and keeps its query options (sslmode…).
"""
from __future__ import annotations

import re
import urllib.parse

SECRET_QUERY = re.compile(r"(pass|pwd|secret|token|key|auth|sig|session|credential|code)", re.I)
"""Query parameter names whose values are treated as secrets in anything stored or printed."""

PG_OPTIONS = ("sslmode", "sslrootcert", "sslcert", "sslkey", "application_name", "connect_timeout",
              "target_session_attrs", "options")
"""Query parameters of a PostgreSQL URL that are connection options (libpq's names)."""


def redact(url: str) -> str:
    """A URL without its password, safe for results and logs. A URL that does not parse (an
    unencoded `#` or `/` in its password) loses its whole userinfo: nothing of a secret is shown."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    authority = rest.split("/", 1)[0]
    if "@" not in rest:
        return url
    try:
        parts = urllib.parse.urlsplit(url)
        parts.port  # noqa: B018 - raises on a garbled authority
    except ValueError:
        parts = None
    if parts is None or "@" not in authority or parts.fragment or parts.hostname is None:
        # the authority is ambiguous: keep only what follows the last '@'
        return f"{scheme}://***@{rest.rsplit('@', 1)[1]}"
    if parts.password is None:
        return url
    user = parts.username or ""
    netloc = parts.netloc.rsplit("@", 1)[1]
    return urllib.parse.urlunsplit(parts._replace(netloc=f"{user}:***@{netloc}"))


def redact_target(url: str) -> str:
    """A load target as it may be stored: no userinfo at all, secret-looking query values masked."""
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return redact(url)
    netloc = parts.netloc.rsplit("@", 1)[1] if "@" in parts.netloc else parts.netloc
    query = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
    masked = [(k, "***" if SECRET_QUERY.search(k) else v) for k, v in query]
    text_query = urllib.parse.urlencode(masked, safe="*") if query else parts.query
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc, query=text_query, fragment=""))


def database_name(url: str, default: str = "perflab") -> str:
    return urllib.parse.unquote(urllib.parse.urlsplit(url).path.lstrip("/")) or default


def with_database(url: str, name: str) -> str:
    """The same server, user, password and options, another database."""
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit(parts._replace(path="/" + urllib.parse.quote(name, safe="")))


def with_userinfo(url: str, user: str, password: str | None) -> str:
    """The same server and database as `url`, as another role (its password given, or none)."""
    parts = urllib.parse.urlsplit(url)
    host = parts.netloc.rsplit("@", 1)[1] if "@" in parts.netloc else parts.netloc
    auth = urllib.parse.quote(user, safe="")
    if password:
        auth += ":" + urllib.parse.quote(password, safe="")
    return urllib.parse.urlunsplit(parts._replace(netloc=f"{auth}@{host}"))


def password(url: str) -> str | None:
    value = urllib.parse.urlsplit(url).password
    return urllib.parse.unquote(value) if value is not None else None


def pg_connect_kwargs(url: str, dbname: str | None = None) -> dict:
    """psycopg.connect() keyword arguments for a postgresql:// URL, options included."""
    parts = urllib.parse.urlsplit(url)
    query = dict(urllib.parse.parse_qsl(parts.query))
    kwargs = {"host": parts.hostname or "127.0.0.1", "port": parts.port or 5432,
              "user": urllib.parse.unquote(parts.username or ""),
              "password": urllib.parse.unquote(parts.password or "") or None,
              "dbname": dbname or database_name(url)}
    kwargs.update({k: v for k, v in query.items() if k in PG_OPTIONS})
    kwargs.setdefault("connect_timeout", 5)
    return kwargs


def role_password(url: str, role: str) -> str:
    """The password of a login role the lab creates for a scenario (pooling's one role per
    variant): derived from the stack's own secret, so every process of a run agrees on it and no
    one without that secret can log in as it. A server without a password (an external one on
    trust) gets a password that is only as private as its own access rules."""
    import hashlib
    import hmac

    return hmac.new((password(url) or "perflab").encode(), role.encode(), hashlib.sha256).hexdigest()[:32]


def as_role(url: str, role: str) -> str:
    """The same server and database as `url`, logging in as a lab-created role with its password."""
    return with_userinfo(url, role, role_password(url, role))


def ensure_login_role(cursor, url: str, role: str) -> None:
    """Create (or re-key) a login role the lab owns, with its derived password (`role_password`)."""
    from psycopg import sql

    cursor.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [role])
    verb = "ALTER" if cursor.fetchone() is not None else "CREATE"
    cursor.execute(sql.SQL(verb + " ROLE {} LOGIN PASSWORD {}").format(
        sql.Identifier(role), sql.Literal(role_password(url, role))).as_string(cursor.connection))


def with_hostport(url: str, host: str, port: int) -> str:
    """The same user, password, database and options at another address."""
    parts = urllib.parse.urlsplit(url)
    auth = parts.netloc.rsplit("@", 1)[0] + "@" if "@" in parts.netloc else ""
    return urllib.parse.urlunsplit(parts._replace(netloc=f"{auth}{host}:{port}"))
