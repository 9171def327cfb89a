"""Models for the workshop exercises. Exercise 2 asks you to add an index here (and a migration)."""
from django.db import models


class Order(models.Model):
    customer_email = models.CharField(max_length=120)
    total_cents = models.IntegerField()
    placed_at = models.DateTimeField()

    class Meta:
        # EXERCISE 2: queries filter orders by customer_email. Declare the index that serves them
        # here, then create its migration:  labs workshop makemigrations
        indexes: list = []
