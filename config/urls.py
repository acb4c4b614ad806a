from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView

from config import views
from imagery import api as imagery_api
from tagging import api as tagging_api
from tagging import tasks_api
from tagging import views as tagging_views

api = [
    path("auth/token/", tagging_api.TokenView.as_view(), name="api-token"),
    path("projects/", tagging_api.ProjectList.as_view(), name="project-list"),
    path("projects/<slug:slug>/", tagging_api.ProjectDetail.as_view(), name="project-detail"),
    path("projects/<slug:slug>/layers/", imagery_api.LayerList.as_view(), name="layer-list"),
    path("projects/<slug:slug>/tiles/", imagery_api.TileList.as_view(), name="tile-list"),
    path("layers/<int:layer_id>/", imagery_api.LayerDetail.as_view(), name="layer-detail"),
    path("layers/<int:layer_id>/retry/", imagery_api.LayerRetry.as_view(), name="layer-retry"),
    path("tiles/<int:tile_id>/", imagery_api.TileDetail.as_view(), name="tile-detail"),
    path("tiles/<int:tile_id>/images/<int:layer_id>/", imagery_api.TileImageView.as_view(), name="tile-image"),
    path("projects/<slug:slug>/tasks/next/", tasks_api.NextTask.as_view(), name="task-next"),
    path("leases/<int:lease_id>/renew/", tasks_api.RenewLease.as_view(), name="lease-renew"),
    path("tiles/<int:tile_id>/classifications/", tasks_api.ClassificationCreate.as_view(),
         name="classification-create"),
]

urlpatterns = [
    path("", tagging_views.home, name="home"),
    path("projects/<slug:slug>/", tagging_views.project_page, name="project-page"),
    path("health/", views.health, name="health"),
    path("admin/", admin.site.urls),
    path("accounts/", include("allauth.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/v1/", include(api)),
]
