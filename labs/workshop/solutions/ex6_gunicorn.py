"""EXERCISE 6 — threads overlap the waits (reference solution)."""

GUNICORN = {"worker_class": "gthread", "workers": 2, "threads": 16}
