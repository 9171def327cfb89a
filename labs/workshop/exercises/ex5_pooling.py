"""EXERCISE 5 — connection pooling.

50 clients hit the database at once, but the server accepts only 20 connections for this
role. `connection_strategy()` says how clients get a connection; "direct" means each opens its
own, and 30 of them fail with "too many connections". Choose a strategy that serves all 50:

  {"mode": "direct"}
  {"mode": "pool", "max_size": N, "timeout_s": T}        # a psycopg pool shared by the clients
  {"mode": "pgbouncer", "pool_size": N}                  # PgBouncer (transaction mode) in front

Check your fix:  labs check 5
"""


def connection_strategy() -> dict:
    return {"mode": "direct"}
