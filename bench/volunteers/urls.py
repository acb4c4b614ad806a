"""The product's URLs, unchanged, plus the two ceilings of bench.volunteers under /bench/."""

from django.urls import path

from bench.volunteers import views
from config.urls import urlpatterns as product_urlpatterns

urlpatterns = [
    *product_urlpatterns,
    path("bench/json/", views.json_ceiling, name="bench-json"),
    path("bench/vote/", views.bare_vote, name="bench-vote"),
]
