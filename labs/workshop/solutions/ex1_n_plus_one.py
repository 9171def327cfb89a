"""EXERCISE 1 — N+1 queries (reference solution).

select_related() joins the two foreign keys into the books query; prefetch_related() fetches
all tags in one query and all reviews in another; the "latest three" are cut in Python from
the prefetched, ordered list (a sliced queryset inside Prefetch would need a window function).
"""
from django.db.models import Prefetch

from labs.bookstore.models import Book, Review


def catalog_page(limit: int = 40) -> list[dict]:
    books = (Book.objects.select_related("publisher", "author")
             .prefetch_related("tags", Prefetch("reviews", queryset=Review.objects.order_by("-created_at", "-id"),
                                                to_attr="ordered_reviews"))
             .order_by("id")[:limit])
    return [{
        "id": book.id,
        "title": book.title,
        "publisher": book.publisher.name,
        "author": book.author.name,
        "tags": sorted(tag.name for tag in book.tags.all()),
        "reviews": [review.rating for review in book.ordered_reviews[:3]],
    } for book in books]
