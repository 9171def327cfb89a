from django.urls import path

from labs.bookstore import async_views, bench_views, views

urlpatterns = [
    path("", views.index, name="index"),
    path("books/<int:pk>/", views.book_detail, name="book-detail"),
    path("books/<int:pk>/fragment/", views.book_detail_fragment, name="book-detail-fragment"),
    path("books/<int:pk>/cached/", views.book_detail_cached, name="book-detail-cached"),
    path("json", bench_views.json_view, name="json"),
    path("db", bench_views.db_view, name="db"),
    path("queries", bench_views.queries_view, name="queries"),
    path("fortunes", bench_views.fortunes_view, name="fortunes"),
    path("cpu", bench_views.cpu_view, name="cpu"),
    path("io", bench_views.io_view, name="io"),
    path("aio", bench_views.aio_view, name="aio"),
    path("upstream/sync", async_views.upstream_sync),
    path("upstream/async", async_views.upstream_async),
    path("orm/sync", async_views.orm_sync),
    path("orm/async", async_views.orm_async),
    path("orm/sync_to_async", async_views.orm_sync_to_async),
]
