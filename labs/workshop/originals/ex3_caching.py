"""EXERCISE 3 — cache-aside, with invalidation.

`book_card(pk)` is read on every page view and `set_stock(pk, stock)` runs when stock changes.
Every read goes to PostgreSQL. Add cache-aside with Django's cache (`from django.core.cache
import cache`, which is Redis here): read from the cache, fall back to the database and store
the value with a timeout. Then make sure a reader never sees a stale stock after set_stock():
delete (or update) the cached entry on write. The check counts stale reads: it must be 0.

Check your fix:  labs check 3
"""
from labs.bookstore.models import Book


def book_card(pk: int) -> dict:
    book = Book.objects.select_related("publisher").get(pk=pk)
    return {"id": book.id, "title": book.title, "publisher": book.publisher.name, "stock": book.stock}


def set_stock(pk: int, stock: int) -> None:
    Book.objects.filter(pk=pk).update(stock=stock)
