"""EXERCISE 7 — acks_late + reject_on_worker_lost, and an idempotency key (reference)."""
from django.db import IntegrityError, connection, transaction

# acknowledged only after the task ran, and requeued when its process dies: at least once
ACKS_LATE = True
REJECT_ON_WORKER_LOST = True


def credit(account: str, amount: int, key: str) -> None:
    """At least once means sometimes twice: the key and the credit commit together, so a rerun
    finds its key already there and applies nothing."""
    try:
        with transaction.atomic():
            with connection.cursor() as cur:
                cur.execute("INSERT INTO jobs_appliedkey (key) VALUES (%s)", [key])
                cur.execute("UPDATE jobs_account SET balance = balance + %s WHERE name = %s", [amount, account])
    except IntegrityError:
        pass  # this key was applied by an earlier run of the task
