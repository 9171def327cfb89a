"""A bookstore: the relations real Django apps have (FK, M2M, reverse FK, JSON, dates)."""
from __future__ import annotations

from django.contrib.postgres.fields import DateTimeRangeField
from django.contrib.postgres.search import SearchVectorField
from django.db import models


class Publisher(models.Model):
    name = models.CharField(max_length=120)
    country = models.CharField(max_length=2)

    def __str__(self) -> str:
        return self.name


class Author(models.Model):
    name = models.CharField(max_length=120)
    born = models.DateField(null=True)

    def __str__(self) -> str:
        return self.name


class Tag(models.Model):
    name = models.CharField(max_length=40, unique=True)

    def __str__(self) -> str:
        return self.name


class Book(models.Model):
    title = models.CharField(max_length=200)
    publisher = models.ForeignKey(Publisher, on_delete=models.CASCADE, related_name="books")
    author = models.ForeignKey(Author, on_delete=models.CASCADE, related_name="books")
    tags = models.ManyToManyField(Tag, related_name="books")
    price_cents = models.PositiveIntegerField()
    pages = models.PositiveIntegerField()
    published = models.DateField()
    stock = models.IntegerField(default=0)
    attributes = models.JSONField(default=dict)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return self.title

    def latest_reviews(self, n: int = 5):
        return self.reviews.order_by("-created_at", "-id")[:n]


class Review(models.Model):
    book = models.ForeignKey(Book, on_delete=models.CASCADE, related_name="reviews")
    rating = models.PositiveSmallIntegerField()
    body = models.TextField()
    created_at = models.DateTimeField()


class Store(models.Model):
    name = models.CharField(max_length=120)
    city = models.CharField(max_length=80)
    books = models.ManyToManyField(Book, related_name="stores")


class SeedState(models.Model):
    """Which deterministic data set is loaded, so a warm stack skips seeding when it matches."""

    key = models.CharField(max_length=80, primary_key=True)
    fingerprint = models.CharField(max_length=200)
    seeded_at = models.DateTimeField(auto_now=True)


class World(models.Model):
    """TechEmpower's World table: 10,000 rows of (id, randomNumber)."""

    random_number = models.IntegerField()


class Fortune(models.Model):
    """TechEmpower's Fortune table: rendered, sorted, by the fortunes test."""

    message = models.CharField(max_length=2048)


class Listing(models.Model):
    """The indexes scenario's table: one column per kind of index worth teaching. No indexes
    here on purpose: the scenario adds each variant's index with Django's own Index classes."""

    sku = models.IntegerField()
    code = models.CharField(max_length=16)
    title = models.CharField(max_length=200)
    body = models.TextField()
    price = models.IntegerField()
    status = models.CharField(max_length=10)
    created_at = models.DateTimeField()
    attrs = models.JSONField(default=dict)
    period = DateTimeRangeField()
    search = SearchVectorField(null=True)


class Event(models.Model):
    """Rows the bulk_writes scenario writes (with a post_save receiver: bulk paths skip signals)."""

    batch = models.IntegerField()
    name = models.CharField(max_length=40)
    amount = models.IntegerField()


class Counter(models.Model):
    """The locking scenario's shared counters; `version` serves optimistic locking."""

    name = models.CharField(max_length=40, unique=True)
    value = models.IntegerField(default=0)
    version = models.IntegerField(default=0)


class Job(models.Model):
    """A job queue row for select_for_update(skip_locked=True)."""

    batch = models.IntegerField()
    done_by = models.CharField(max_length=40, null=True)
    done_count = models.IntegerField(default=0)
