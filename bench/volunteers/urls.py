"""The product's URLs, unchanged, plus the two ceilings of bench.volunteers under /bench/."""

from django.urls import path

from bench.volunteers import floor, views
from config.urls import urlpatterns as product_urlpatterns

urlpatterns = [
    *product_urlpatterns,
    path("bench/json/", views.json_ceiling, name="bench-json"),
    path("bench/vote/", views.bare_vote, name="bench-vote"),
    # Under /api/ so that token requests take the API's lane (config.api_lane), as the volunteers' API does.
    path("api/bench-floor/projects/<slug:slug>/tasks/next/", floor.floor_next, name="bench-floor-next"),
    path("api/bench-floor/tiles/<int:tile_id>/classifications/", floor.floor_submit, name="bench-floor-submit"),
]
