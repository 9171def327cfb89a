"""Deterministic seed data: the same seed and size give the same rows, ids included.

Seeding is idempotent and skipped when the loaded data set already matches (warm stacks):
a fingerprint of (data version, sizes, seed) is kept in SeedState.
"""
from __future__ import annotations

import datetime as dt
import random

from django.db import connection, transaction

from labs.bookstore.models import Author, Book, Publisher, Review, SeedState, Store, Tag

DATA_VERSION = 1
"""Bump when the generated data changes shape, so warm stacks reseed."""

TAG_NAMES = [
    "fiction", "history", "science", "poetry", "biography", "travel", "cooking", "children",
    "fantasy", "mystery", "romance", "thriller", "philosophy", "economics", "art", "music",
    "politics", "religion", "sports", "health", "business", "computing", "mathematics",
    "physics", "chemistry", "biology", "law", "education", "drama", "humour", "classics",
    "graphic-novel", "horror", "memoir", "essays", "nature", "design", "film", "languages", "games",
]
COUNTRIES = ["GB", "US", "FR", "DE", "IT", "ES", "JP", "BR", "IN", "NL"]
WORDS = ("river night garden shadow empire silent winter glass stone letter harbour orchard "
         "machine voyage kingdom mirror candle forest archive signal theory atlas").split()
CITIES = ["London", "Paris", "Berlin", "Madrid", "Rome", "Tokyo", "Lisbon", "Dublin", "Oslo", "Vienna"]


def catalog_fingerprint(books: int, seed: int) -> str:
    return f"v{DATA_VERSION}:books={books}:seed={seed}"


def seed_catalog(books: int, seed: int = 42) -> bool:
    """Load `books` books with publishers, authors, tags, reviews and stores. True if it seeded."""
    fingerprint = catalog_fingerprint(books, seed)
    current = SeedState.objects.filter(key="catalog").values_list("fingerprint", flat=True).first()
    if current == fingerprint:
        return False
    rng = random.Random(seed)
    with transaction.atomic():
        with connection.cursor() as cur:
            # every table that references these is in the list: no CASCADE, which would also empty
            # any other table pointing at them (the lab only ever empties what it made, by name)
            cur.execute(
                "TRUNCATE bookstore_store_books, bookstore_store, bookstore_review, bookstore_book_tags, "
                "bookstore_book, bookstore_tag, bookstore_author, bookstore_publisher RESTART IDENTITY"
            )
        n_publishers = max(5, books // 20)
        n_authors = max(10, books // 5)
        Publisher.objects.bulk_create(
            Publisher(name=f"{rng.choice(WORDS).title()} House {i}", country=rng.choice(COUNTRIES))
            for i in range(1, n_publishers + 1)
        )
        Author.objects.bulk_create(
            Author(name=f"Author {i} {rng.choice(WORDS).title()}",
                   born=dt.date(1930, 1, 1) + dt.timedelta(days=rng.randrange(25_000)))
            for i in range(1, n_authors + 1)
        )
        Tag.objects.bulk_create(Tag(name=name) for name in TAG_NAMES)
        base_day = dt.date(1990, 1, 1)
        Book.objects.bulk_create(
            (Book(
                title=f"The {rng.choice(WORDS).title()} of {rng.choice(WORDS).title()} #{i}",
                publisher_id=rng.randrange(1, n_publishers + 1),
                author_id=rng.randrange(1, n_authors + 1),
                price_cents=rng.randrange(499, 4999),
                pages=rng.randrange(80, 900),
                published=base_day + dt.timedelta(days=i * 9 // 2 + rng.randrange(5)),
                stock=rng.randrange(0, 50),
                attributes={"format": rng.choice(["hardcover", "paperback", "ebook"]),
                            "language": rng.choice(["en", "fr", "de", "es"])},
            ) for i in range(1, books + 1)),
            batch_size=2000,
        )
        through = Book.tags.through
        links = []
        for book_id in range(1, books + 1):
            for tag_id in rng.sample(range(1, len(TAG_NAMES) + 1), rng.randint(1, 4)):
                links.append(through(book_id=book_id, tag_id=tag_id))
        through.objects.bulk_create(links, batch_size=5000)
        started = dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)
        Review.objects.bulk_create(
            (Review(book_id=book_id, rating=rng.randint(1, 5), body=f"{rng.choice(WORDS)} " * rng.randint(5, 30),
                    created_at=started + dt.timedelta(minutes=rng.randrange(500_000)))
             for book_id in range(1, books + 1) for _ in range(rng.randint(0, 4))),
            batch_size=5000,
        )
        Store.objects.bulk_create(Store(name=f"{city} Books", city=city) for city in CITIES)
        store_links = [Store.books.through(store_id=s, book_id=b)
                       for b in range(1, books + 1) for s in rng.sample(range(1, len(CITIES) + 1), 2)]
        Store.books.through.objects.bulk_create(store_links, batch_size=5000)
        SeedState.objects.update_or_create(key="catalog", defaults={"fingerprint": fingerprint})
    with connection.cursor() as cur:
        cur.execute("ANALYZE")
    return True


FORTUNES = [
    "fortune: No such file or directory",
    "A computer scientist is someone who fixes things that aren't broken.",
    "After enough decimal places, nobody gives a damn.",
    "A bad random number generator: 1, 1, 1, 1, 1, 4.33e+67, 1, 1, 1",
    "A computer program does what you tell it to do, not what you want it to do.",
    "Emacs is a nice operating system, but I prefer UNIX. — Tom Christaensen",
    "Any program that runs right is obsolete.",
    "A list is only as strong as its weakest link. — Donald Knuth",
    "Feature: A bug with seniority.",
    "Computers make very fast, very accurate mistakes.",
    '<script>alert("This should not be displayed in a browser alert box.");</script>',
    "フレームワークのベンチマーク",
]
WORLD_ROWS = 10_000


def seed_techempower(seed: int = 42) -> bool:
    """TechEmpower's World (10,000 rows) and Fortune (12 rows) tables. True if it seeded."""
    from labs.bookstore.models import Fortune, World

    fingerprint = f"v{DATA_VERSION}:world={WORLD_ROWS}:seed={seed}"
    if SeedState.objects.filter(key="techempower", fingerprint=fingerprint).exists():
        return False
    rng = random.Random(seed)
    with transaction.atomic():
        with connection.cursor() as cur:
            cur.execute("TRUNCATE bookstore_world, bookstore_fortune RESTART IDENTITY")
        World.objects.bulk_create((World(random_number=rng.randint(1, 10_000)) for _ in range(WORLD_ROWS)),
                                  batch_size=5000)
        Fortune.objects.bulk_create(Fortune(message=m) for m in FORTUNES)
        SeedState.objects.update_or_create(key="techempower", defaults={"fingerprint": fingerprint})
    with connection.cursor() as cur:
        cur.execute("ANALYZE bookstore_world, bookstore_fortune")
    return True


def set_stocks(stocks: dict[int, int]) -> None:
    """Give books these stock values, in one statement (only rows that differ are written)."""
    from django.db import connection

    if not stocks:
        return
    values = ",".join(["(%s,%s)"] * len(stocks))
    params = [x for pair in stocks.items() for x in pair]
    with connection.cursor() as cur:
        cur.execute(f"UPDATE bookstore_book b SET stock = v.stock FROM (VALUES {values}) AS v(id, stock) "
                    "WHERE b.id = v.id AND b.stock <> v.stock", params)
