from django.urls import path

from labs.bookstore import views

urlpatterns = [
    path("books/<int:pk>/", views.book_detail, name="book-detail"),
    path("books/<int:pk>/fragment/", views.book_detail_fragment, name="book-detail-fragment"),
    path("books/<int:pk>/cached/", views.book_detail_cached, name="book-detail-cached"),
]
