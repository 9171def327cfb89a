"""The tasks scenario's task for Django's own tasks framework (`django.tasks` on Django 6, the
django-tasks backport on 5.2) with the database backend of django-tasks-db: enqueuing writes a
row through Django's connection — inside the caller's transaction — and a `db_worker` process
polls the table for it. No broker. It accounts for itself in the same ledger as the Celery tasks.
"""
from __future__ import annotations

import time

try:
    from django.tasks import task
except ImportError:  # Django < 6: the backport
    from django_tasks import task

from labs.jobs.tasks import record


@task()
def read_order(batch: str, key: int, sent_at: float, order_id: int) -> int:
    """Read the order the producer wrote just before enqueuing: -1 when it is not there (yet)."""
    from labs.jobs.models import Order

    started = time.time()
    total = Order.objects.filter(pk=order_id).values_list("total_cents", flat=True).first()
    result = -1 if total is None else int(total)
    record(batch, key, sent_at, started, result)
    return result
