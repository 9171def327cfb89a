"""EXERCISE 6 — Gunicorn for an I/O-bound endpoint.

/io does a query and then waits 20 ms on an upstream service. With this configuration, under
20 concurrent users, requests queue behind the few busy workers. Choose a configuration whose
p95 latency is at most half the original's (worker_class: sync, gthread, gevent, asgi;
workers; threads for gthread). Keep it reasonable: at most 8 worker processes.

Check your fix:  labs check 6
"""

GUNICORN = {"worker_class": "sync", "workers": 2, "threads": 1}
