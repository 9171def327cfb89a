"""EXERCISE 7 — a background task that survives a crash.

`credit(account, amount, key)` is the body of a Celery task: it adds `amount` to an account,
and the task then goes on working (a receipt, a notification) before it finishes. Workers die —
a deploy, the OOM killer — so `labs check 7` runs three of these tasks on a real Celery worker
and SIGKILLs the process running the first one right after its credit. Make the task safe:
every task finishes, and no credit is lost or applied twice.

  ACKS_LATE              acknowledge the message after the task ran, not when it starts
  REJECT_ON_WORKER_LOST  when the task's process dies, put the message back on the queue

Check your fix:  labs check 7
"""
from django.db import connection

ACKS_LATE = False
REJECT_ON_WORKER_LOST = False


def credit(account: str, amount: int, key: str) -> None:
    """Add `amount` to `account`. `key` is unique per task, and the same when a task runs again."""
    with connection.cursor() as cur:
        cur.execute("UPDATE jobs_account SET balance = balance + %s WHERE name = %s", [amount, account])
