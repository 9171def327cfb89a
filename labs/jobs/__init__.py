"""Background work for the tasks scenario: Celery tasks and the ledger they account themselves in."""
