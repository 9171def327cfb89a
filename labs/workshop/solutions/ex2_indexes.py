"""EXERCISE 2 — an index, proven by the plan.

`orders_of(email)` is the query behind a customer's order history. On 60,000 orders it reads
the whole table (a Seq Scan) every time. Add the index that serves it — in the model's
Meta.indexes (labs/workshop/models.py) — create its migration with `labs workshop makemigrations`,
and check that PostgreSQL's plan really uses it. Do not change this function.

Check your fix:  labs check 2
"""
from labs.workshop.models import Order


def orders_of(email: str) -> list[tuple[int, int]]:
    return list(Order.objects.filter(customer_email=email).order_by("id").values_list("id", "total_cents"))
