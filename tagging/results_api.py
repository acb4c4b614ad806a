"""The published results for the volunteers who worked on a project (tagging/results.py):

- GET /api/v1/projects/<slug>/results/                   their contribution and the project's totals
- GET /api/v1/projects/<slug>/results/tiles.geojson?bbox=w,s,e,n      tiles with their consensus, "mine" marked
- GET /api/v1/projects/<slug>/results/buildings.geojson?bbox=w,s,e,n  confirmed buildings, "mine" marked

Volunteers who tagged a tile of the project, once a manager has published it; coordinators, managers
and admins at any time. Someone who cannot see the project gets 404; a member who may not see the
results (not published yet, or they tagged nothing) 403.
"""

from __future__ import annotations

from typing import Any

from django.http import JsonResponse
from django.utils.translation import gettext as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from config.errors import NotAllowed
from tagging.access import access_project
from tagging.map_api import parse_bbox  # the map's own: clamped to the world
from tagging.models import Project
from tagging.results import building_features, contribution, results_visible, tile_features

GEOJSON = "application/geo+json"
BBOX = OpenApiParameter("bbox", str, description="west,south,east,north in WGS84 degrees (default: everything)")


def access_results(user: Any, slug: str) -> Project:
    """The project if the user may see its results; NotFound or NotAllowed otherwise."""
    project = access_project(user, slug)
    if not results_visible(user, project):
        if project.published_at is None:
            raise NotAllowed(_("The results of this project are not published yet."))
        raise NotAllowed(_("The results are shown to the volunteers who tagged tiles of this project."))
    return project


class ContributionOutput(serializers.Serializer):
    project = serializers.CharField()
    published_at = serializers.DateTimeField(allow_null=True)
    tiles = serializers.IntegerField(help_text="Tiles the volunteer tagged.")
    buildings_confirmed = serializers.IntegerField(help_text="Buildings they marked that the results keep.")
    buildings_found = serializers.IntegerField(help_text="Destroyed buildings in the results (reviews applied).")
    tiles_judged = serializers.IntegerField(help_text="Tiles of the project with a consensus.")


class ResultsSummary(APIView):
    @extend_schema(responses=ContributionOutput)
    def get(self, request: Request, slug: str) -> Response:
        """The volunteer's contribution to the published results, beside the project's totals."""
        project = access_results(request.user, slug)
        return Response({"project": project.slug, "published_at": project.published_at,
                         **contribution(project=project, volunteer=request.user)})


def geojson(data: dict[str, Any]) -> JsonResponse:
    response = JsonResponse(data, content_type=GEOJSON)
    response["Cache-Control"] = "private, no-cache"
    return response


class ResultTiles(APIView):
    @extend_schema(operation_id="results_tiles", parameters=[BBOX], responses={(200, GEOJSON): OpenApiTypes.OBJECT})
    def get(self, request: Request, slug: str) -> JsonResponse:
        """Tiles in view with a consensus (or tagged by the volunteer): label and confidence after review, and
        "mine". At most results.MAX_FEATURES; "truncated" says when there were more."""
        project = access_results(request.user, slug)
        return geojson(tile_features(project=project, volunteer=request.user,
                                     bbox=parse_bbox(request.query_params.get("bbox"))))


class ResultBuildings(APIView):
    @extend_schema(operation_id="results_buildings", parameters=[BBOX],
                   responses={(200, GEOJSON): OpenApiTypes.OBJECT})
    def get(self, request: Request, slug: str) -> JsonResponse:
        """Destroyed buildings in view (confidence at least 0.5, reviews applied), "mine" when the volunteer
        marked it. At most results.MAX_FEATURES; "truncated" says when there were more."""
        project = access_results(request.user, slug)
        return geojson(building_features(project=project, volunteer=request.user,
                                         bbox=parse_bbox(request.query_params.get("bbox"))))
