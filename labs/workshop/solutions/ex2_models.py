"""EXERCISE 2 — reference solution for labs/workshop/models.py (then: labs workshop makemigrations)."""
from django.db import models


class Order(models.Model):
    customer_email = models.CharField(max_length=120)
    total_cents = models.IntegerField()
    placed_at = models.DateTimeField()

    class Meta:
        indexes = [models.Index(fields=["customer_email"], name="workshop_order_email_idx")]
