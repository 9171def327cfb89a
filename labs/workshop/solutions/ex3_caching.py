"""EXERCISE 3 — cache-aside with invalidation (reference solution)."""
from django.core.cache import cache

from labs.bookstore.models import Book

TTL_S = 300


def _key(pk: int) -> str:
    return f"workshop:book-card:{pk}"


def book_card(pk: int) -> dict:
    card = cache.get(_key(pk))
    if card is None:
        book = Book.objects.select_related("publisher").get(pk=pk)
        card = {"id": book.id, "title": book.title, "publisher": book.publisher.name, "stock": book.stock}
        cache.set(_key(pk), card, TTL_S)
    return card


def set_stock(pk: int, stock: int) -> None:
    Book.objects.filter(pk=pk).update(stock=stock)
    cache.delete(_key(pk))  # the next read reloads the new value: no stale reads
