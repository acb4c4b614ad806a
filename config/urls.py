from django.contrib import admin
from django.urls import include, path
from django.views.i18n import JavaScriptCatalog
from drf_spectacular.views import SpectacularAPIView

from config import views
from imagery import api as imagery_api
from tagging import api as tagging_api
from tagging import consensus_api, tasks_api, volunteer_api
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
    # POST: a volunteer's answer (tasks_api.ClassificationCreate); GET: who said what, for coordinators.
    path("tiles/<int:tile_id>/classifications/", consensus_api.TileClassifications.as_view(),
         name="classification-create"),
    path("projects/<slug:slug>/consensus/", consensus_api.ConsensusSummary.as_view(), name="consensus-summary"),
    path("projects/<slug:slug>/consensus/tiles.geojson", consensus_api.TilesGeoJSON.as_view(),
         name="consensus-tiles-geojson"),
    path("projects/<slug:slug>/consensus/tiles.csv", consensus_api.TilesCSV.as_view(), name="consensus-tiles-csv"),
    path("projects/<slug:slug>/consensus/buildings.geojson", consensus_api.BuildingsGeoJSON.as_view(),
         name="consensus-buildings-geojson"),
    path("projects/<slug:slug>/consensus/buildings.csv", consensus_api.BuildingsCSV.as_view(),
         name="consensus-buildings-csv"),
    path("projects/<slug:slug>/consensus/recompute/", consensus_api.Recompute.as_view(), name="consensus-recompute"),
    path("projects/<slug:slug>/volunteers/reliability/", consensus_api.ReliabilityList.as_view(),
         name="volunteer-reliability"),
    path("buildings/<int:building_id>/classifications/", consensus_api.BuildingClassifications.as_view(),
         name="building-classifications"),
    path("tiles/<int:tile_id>/skip/", volunteer_api.SkipTile.as_view(), name="tile-skip"),
    path("tiles/<int:tile_id>/reports/", volunteer_api.ReportTile.as_view(), name="tile-report"),
    path("projects/<slug:slug>/tutorial/", volunteer_api.TutorialView.as_view(), name="tutorial"),
    path("projects/<slug:slug>/tutorial/practice/<int:tile_id>/", volunteer_api.PracticeCheck.as_view(),
         name="tutorial-practice"),
    path("projects/<slug:slug>/tutorial/done/", volunteer_api.TutorialDone.as_view(), name="tutorial-done"),
    path("projects/<slug:slug>/me/", volunteer_api.MyProgress.as_view(), name="my-progress"),
    path("projects/<slug:slug>/invitations/", volunteer_api.InvitationList.as_view(), name="invitation-list"),
    path("invitations/<str:token>/accept/", volunteer_api.InvitationAccept.as_view(), name="invitation-accept"),
    path("me/", volunteer_api.AccountView.as_view(), name="account"),
]

urlpatterns = [
    path("", tagging_views.home, name="home"),
    path("projects/<slug:slug>/", tagging_views.project_page, name="project-page"),
    path("projects/<slug:slug>/tag/", tagging_views.tag_page, name="tag-page"),
    path("projects/<slug:slug>/me/", tagging_views.progress_page, name="progress-page"),
    path("invite/<str:token>/", tagging_views.invitation_page, name="invitation-page"),
    path("account/", tagging_views.account_page, name="account-page"),
    path("i18n/", include("django.conf.urls.i18n")),
    path("jsi18n/", JavaScriptCatalog.as_view(), name="javascript-catalog"),
    path("health/", views.health, name="health"),
    path("admin/", admin.site.urls),
    path("accounts/", include("allauth.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/v1/", include(api)),
]
