from django.urls import include, path

from labs.urls import urlpatterns as lab_urls

urlpatterns = [
    *lab_urls,
    path("silk/", include("silk.urls", namespace="silk")),
    path("__debug__/", include("debug_toolbar.urls")),
]
