"""Three GraphQL schemas over the bookstore, one shape: `books(first)` → `author` → `books` (the
graphql scenario, scenarios/graphql_resolvers.py, sends them the same queries).

- `naive`: plain strawberry types over model instances; every relation is an attribute access,
  so a query per parent object (the GraphQL N+1).
- `dataloader`: async resolvers and a DataLoader per relation and request: the keys of one level
  are collected and loaded in one query.
- `optimizer`: strawberry-django types with its DjangoOptimizerExtension: the query's selections
  become select_related / prefetch_related / only() on the root queryset.

Strawberry with strawberry-graphql-django rather than graphene-django: it is the better kept of
the two (releases through 2026, Django 6 support), and its optimizer is part of the package.
"""
from __future__ import annotations

import strawberry
import strawberry_django
from asgiref.sync import async_to_sync, sync_to_async
from strawberry.dataloader import DataLoader
from strawberry_django.optimizer import DjangoOptimizerExtension

from labs.bookstore import models

# -- naive ------------------------------------------------------------------------------------------
@strawberry.type(name="Author")
class NaiveAuthor:
    id: strawberry.ID
    name: str

    @strawberry.field
    def books(self) -> list[NaiveBook]:
        return list(self.books.all())  # `self` is the Author model instance: a query per author


@strawberry.type(name="Book")
class NaiveBook:
    id: strawberry.ID
    title: str
    author: NaiveAuthor  # book.author: a query per book


@strawberry.type(name="Query")
class NaiveQuery:
    @strawberry.field
    def books(self, first: int) -> list[NaiveBook]:
        return list(models.Book.objects.order_by("id")[:first])


# -- dataloader -------------------------------------------------------------------------------------
def _authors(ids: list[int]) -> list[models.Author]:
    found = models.Author.objects.in_bulk(ids)
    return [found[i] for i in ids]


def _books_of(author_ids: list[int]) -> list[list[models.Book]]:
    by_author: dict[int, list[models.Book]] = {i: [] for i in author_ids}
    for book in models.Book.objects.filter(author_id__in=author_ids):
        by_author[book.author_id].append(book)
    return [by_author[i] for i in author_ids]


class Loaders:
    """One set per request: what a level asks for is loaded in one query."""

    def __init__(self) -> None:
        # thread_sensitive: the ORM runs in the request's own thread (its connection), batched
        self.author = DataLoader(load_fn=sync_to_async(_authors, thread_sensitive=True))
        self.books_of = DataLoader(load_fn=sync_to_async(_books_of, thread_sensitive=True))


@strawberry.type(name="Author")
class LoadedAuthor:
    id: strawberry.ID
    name: str

    @strawberry.field
    async def books(self, info: strawberry.Info) -> list[LoadedBook]:
        return await info.context.books_of.load(self.id)


@strawberry.type(name="Book")
class LoadedBook:
    id: strawberry.ID
    title: str

    @strawberry.field
    async def author(self, info: strawberry.Info) -> LoadedAuthor:
        return await info.context.author.load(self.author_id)


@strawberry.type(name="Query")
class LoadedQuery:
    @strawberry.field
    async def books(self, first: int) -> list[LoadedBook]:
        return await sync_to_async(lambda: list(models.Book.objects.order_by("id")[:first]),
                                   thread_sensitive=True)()


# -- optimizer --------------------------------------------------------------------------------------
@strawberry_django.type(models.Author, name="Author")
class OptimizedAuthor:
    id: strawberry.ID
    name: str
    books: list[OptimizedBook]


@strawberry_django.type(models.Book, name="Book")
class OptimizedBook:
    id: strawberry.ID
    title: str
    author: OptimizedAuthor


@strawberry.type(name="Query")
class OptimizedQuery:
    @strawberry_django.field
    def books(self, first: int) -> list[OptimizedBook]:
        return models.Book.objects.order_by("id")[:first]


SCHEMAS = {
    "naive": strawberry.Schema(NaiveQuery),
    "dataloader": strawberry.Schema(LoadedQuery),
    "optimizer": strawberry.Schema(OptimizedQuery, extensions=[DjangoOptimizerExtension]),
}


def execute(schema: str, query: str) -> dict:
    """Run a query on one of the schemas; its data (errors raise)."""
    if schema == "dataloader":
        result = async_to_sync(SCHEMAS[schema].execute)(query, context_value=Loaders())
    else:
        result = SCHEMAS[schema].execute_sync(query)
    if result.errors:
        raise RuntimeError(f"GraphQL errors ({schema}): {result.errors}")
    return result.data
