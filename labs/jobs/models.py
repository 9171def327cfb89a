"""The tasks scenario's ledger and the data its tasks touch.

Every task run writes its row of `TaskRun` (batch, key): how often it started (`attempts`), how
often its work was applied (`applied`), its status and times. The harness counts enqueued vs done
vs failed vs lost, and duplicates, from this table — never from Celery's own bookkeeping.
"""
from django.db import models


class TaskRun(models.Model):
    batch = models.CharField(max_length=64)
    key = models.IntegerField()
    attempts = models.IntegerField(default=0)
    applied = models.IntegerField(default=0)
    """How many times the task's side effect was applied (2 = a duplicate)."""
    status = models.CharField(max_length=10, default="running")
    """running, done or failed."""
    pid = models.IntegerField(null=True)
    result = models.BigIntegerField(null=True)
    sent_at = models.FloatField()
    started_at = models.FloatField(null=True)
    done_at = models.FloatField(null=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["batch", "key"], name="jobs_taskrun_batch_key")]


class Account(models.Model):
    """What a non-idempotent task changes: crediting twice is money created."""

    name = models.CharField(max_length=64, unique=True)
    balance = models.BigIntegerField(default=0)


class AppliedKey(models.Model):
    """Idempotency keys: a task records its key in the same transaction as its effect."""

    key = models.CharField(max_length=96, unique=True)


class Order(models.Model):
    """Written in a transaction that also enqueues a task reading it (the on_commit case)."""

    batch = models.CharField(max_length=64)
    total_cents = models.IntegerField()
