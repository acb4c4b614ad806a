from django.contrib import admin
from django.urls import include, path
from django.views.i18n import JavaScriptCatalog
from drf_spectacular.views import SpectacularAPIView

from config import views
from imagery import api as imagery_api
from imagery import xyz as imagery_xyz
from tagging import (
    admin_api,
    consensus_api,
    manage_views,
    map_api,
    map_views,
    results_api,
    review_api,
    review_views,
    tasks_api,
    volunteer_api,
)
from tagging import api as tagging_api
from tagging import views as tagging_views

api = [
    path("projects/<slug:slug>/tasks/next/", tasks_api.NextTask.as_view(), name="task-next"),
    path("leases/<int:lease_id>/renew/", tasks_api.RenewLease.as_view(), name="lease-renew"),
    # POST: a volunteer's answer (tasks_api.ClassificationCreate); GET: who said what, for coordinators.
    path("tiles/<int:tile_id>/classifications/", consensus_api.TileClassifications.as_view(),
         name="classification-create"),
    path("auth/token/", tagging_api.TokenView.as_view(), name="api-token"),
    path("projects/", tagging_api.ProjectList.as_view(), name="project-list"),
    path("projects/<slug:slug>/", tagging_api.ProjectDetail.as_view(), name="project-detail"),
    path("projects/<slug:slug>/layers/", imagery_api.LayerList.as_view(), name="layer-list"),
    path("projects/<slug:slug>/tiles/", imagery_api.TileList.as_view(), name="tile-list"),
    path("layers/<int:layer_id>/", imagery_api.LayerDetail.as_view(), name="layer-detail"),
    path("layers/<int:layer_id>/retry/", imagery_api.LayerRetry.as_view(), name="layer-retry"),
    path("tiles/<int:tile_id>/", imagery_api.TileDetail.as_view(), name="tile-detail"),
    path("tiles/<int:tile_id>/images/<int:layer_id>/", imagery_api.TileImageView.as_view(), name="tile-image"),
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
    path("projects/<slug:slug>/settings/", admin_api.ProjectSettings.as_view(), name="project-settings"),
    path("projects/<slug:slug>/status/", admin_api.ProjectStatus.as_view(), name="project-status"),
    path("projects/<slug:slug>/members/", admin_api.MemberList.as_view(), name="member-list"),
    path("projects/<slug:slug>/dashboard/", admin_api.Dashboard.as_view(), name="project-dashboard"),
    path("tiles/<int:tile_id>/gold/", admin_api.GoldTile.as_view(), name="tile-gold"),
    path("layers/<int:layer_id>/xyz/<int:z>/<int:x>/<int:y>.webp", imagery_xyz.XYZTileView.as_view(),
         name="layer-xyz-tile"),
    path("projects/<slug:slug>/map/tiles.geojson", map_api.MapTiles.as_view(), name="map-tiles"),
    path("projects/<slug:slug>/map/buildings.geojson", map_api.MapBuildings.as_view(), name="map-buildings"),
    # Expert review, GIS exports, the evidence bundle and publishing (tagging/review_api.py, consensus_api.py).
    path("projects/<slug:slug>/consensus/tiles.gpkg", consensus_api.TilesGeoPackage.as_view(),
         name="consensus-tiles-gpkg"),
    path("projects/<slug:slug>/consensus/buildings.gpkg", consensus_api.BuildingsGeoPackage.as_view(),
         name="consensus-buildings-gpkg"),
    path("projects/<slug:slug>/consensus/tiles.kml", consensus_api.TilesKML.as_view(), name="consensus-tiles-kml"),
    path("projects/<slug:slug>/consensus/buildings.kml", consensus_api.BuildingsKML.as_view(),
         name="consensus-buildings-kml"),
    path("projects/<slug:slug>/consensus/provenance.json", consensus_api.Provenance.as_view(),
         name="consensus-provenance"),
    path("projects/<slug:slug>/review/queue/", review_api.ReviewQueue.as_view(), name="review-queue"),
    path("projects/<slug:slug>/review/tiles/<int:tile_id>/", review_api.ReviewTile.as_view(), name="review-tile"),
    path("projects/<slug:slug>/reviews/", review_api.ReviewList.as_view(), name="review-list"),
    path("reviews/<int:review_id>/undo/", review_api.ReviewUndo.as_view(), name="review-undo"),
    path("projects/<slug:slug>/evidence.zip", review_api.Evidence.as_view(), name="evidence"),
    path("projects/<slug:slug>/publish/", review_api.Publish.as_view(), name="project-publish"),
    # The published results for the volunteers (tagging/results_api.py).
    path("projects/<slug:slug>/results/", results_api.ResultsSummary.as_view(), name="results-summary"),
    path("projects/<slug:slug>/results/tiles.geojson", results_api.ResultTiles.as_view(), name="results-tiles"),
    path("projects/<slug:slug>/results/buildings.geojson", results_api.ResultBuildings.as_view(),
         name="results-buildings"),
]

urlpatterns = [
    # First: Django tries the patterns in order, and the volunteers' API answers two requests per vote (the
    # hot ones lead its list). No page's path starts with api/.
    path("api/v1/", include(api)),
    path("", tagging_views.home, name="home"),
    path("projects/new/", manage_views.project_new_page, name="project-new-page"),  # before the slug pattern
    path("projects/<slug:slug>/", tagging_views.project_page, name="project-page"),
    path("projects/<slug:slug>/tag/", tagging_views.tag_page, name="tag-page"),
    path("projects/<slug:slug>/me/", tagging_views.progress_page, name="progress-page"),
    path("projects/<slug:slug>/dashboard/", manage_views.dashboard_page, name="dashboard-page"),
    path("projects/<slug:slug>/settings/", manage_views.project_settings_page, name="project-settings-page"),
    path("projects/<slug:slug>/upload/", manage_views.upload_page, name="upload-page"),
    path("projects/<slug:slug>/gold/", manage_views.gold_page, name="gold-page"),
    path("projects/<slug:slug>/members/", manage_views.members_page, name="members-page"),
    path("projects/<slug:slug>/map/", map_views.map_page, name="map-page"),
    path("projects/<slug:slug>/review/", review_views.review_page, name="review-page"),
    path("projects/<slug:slug>/results/", review_views.results_page, name="results-page"),
    path("invite/<str:token>/", tagging_views.invitation_page, name="invitation-page"),
    path("account/", tagging_views.account_page, name="account-page"),
    path("i18n/", include("django.conf.urls.i18n")),
    path("jsi18n/", JavaScriptCatalog.as_view(), name="javascript-catalog"),
    path("health/", views.health, name="health"),
    path("admin/", admin.site.urls),
    path("accounts/", include("allauth.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
]
