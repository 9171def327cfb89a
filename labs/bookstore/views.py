"""Views the scenarios drive through Django's request handling (and, later, Gunicorn)."""
from __future__ import annotations

from django.shortcuts import get_object_or_404, render
from django.views.decorators.cache import cache_page

from labs.bookstore.models import Book

PAGE_TTL_S = 300


def book_detail(request, pk: int):
    """A book page: the book, its tags and latest reviews (3 queries, nothing cached)."""
    book = get_object_or_404(Book.objects.select_related("publisher", "author"), pk=pk)
    return render(request, "bookstore/book_detail.html", {"book": book, "fragment_cache": False})


def book_detail_fragment(request, pk: int):
    """The same page with `{% cache %}` around the tags and reviews (1 query on a fragment hit)."""
    book = get_object_or_404(Book.objects.select_related("publisher", "author"), pk=pk)
    return render(request, "bookstore/book_detail.html",
                  {"book": book, "fragment_cache": True, "fragment_ttl": PAGE_TTL_S})


book_detail_cached = cache_page(PAGE_TTL_S, key_prefix="book")(book_detail)
"""The whole response cached by URL (0 queries on a hit)."""


def index(request):
    """A page of links to the lab's endpoints (what `labs serve` opens on)."""
    links = [("/books/1/", "a book page (3 queries)"), ("/books/1/fragment/", "with {% cache %} around the extras"),
             ("/books/1/cached/", "cache_page: the whole response cached"), ("/json", "JSON serialization"),
             ("/db", "one random row"), ("/queries?queries=20", "20 random rows"), ("/fortunes", "template + sort"),
             ("/cpu", "pure-Python CPU work"), ("/io", "a query plus 20 ms of upstream waiting")]
    return render(request, "bookstore/index.html", {"links": links})
