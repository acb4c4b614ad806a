"""The coordinators' review API: the queue, reviews and their undo, a tile as the review page needs it, the
evidence bundle, and publishing the results to the volunteers.

Reviews and the queue are for a project's coordinators (and its managers and admins): a volunteer
gets 403, someone who cannot see the project 404. Publishing is for managers and admins.
"""

from __future__ import annotations

import tempfile
from typing import Any

from django.db.models import Q, QuerySet
from django.http import FileResponse
from django.utils import timezone
from django.utils.translation import gettext as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.generics import ListAPIView
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from config.errors import InvalidInput, NotFound
from imagery.models import Tile
from tagging.access import access_project, can_view_project
from tagging.consensus_api import JSONErrorsOnly
from tagging.evidence import write_evidence
from tagging.models import Building, Project, Review, TileConsensus
from tagging.reviews import (
    added_state,
    building_state,
    create_review,
    review_index,
    review_queue,
    tile_state,
    undo_review,
)


class ReviewInput(serializers.Serializer):
    tile = serializers.IntegerField(required=False, allow_null=True, help_text="The tile reviewed (or added on).")
    building = serializers.IntegerField(required=False, allow_null=True, help_text="The building reviewed.")
    added = serializers.IntegerField(required=False, allow_null=True,
                                     help_text="A building a coordinator added, by the id of its add review (the "
                                               "\"review-<id>\" of the exports): to confirm, reject or move it.")
    action = serializers.ChoiceField(choices=Review.Action.choices)
    label = serializers.CharField(required=False, allow_blank=True, max_length=40, help_text="For relabel.")
    lon = serializers.FloatField(required=False, allow_null=True, min_value=-180, max_value=180)
    lat = serializers.FloatField(required=False, allow_null=True, min_value=-90, max_value=90)
    ground_x = serializers.FloatField(required=False, allow_null=True, help_text="Grid CRS metres.")
    ground_y = serializers.FloatField(required=False, allow_null=True)
    note = serializers.CharField(required=False, allow_blank=True, max_length=2000)


class ReviewOutput(serializers.ModelSerializer):
    reviewer = serializers.CharField(source="reviewer.username", allow_null=True, default=None,
                                     help_text="The coordinator's pseudonym.")
    undone_by = serializers.CharField(source="undone_by.username", allow_null=True, default=None)
    undone = serializers.SerializerMethodField()

    class Meta:
        model = Review
        fields = ["id", "tile", "building", "added", "action", "label", "ground_x", "ground_y", "lon", "lat", "note",
                  "before", "after", "reviewer", "created_at", "undone", "undone_at", "undone_by"]

    def get_undone(self, review: Review) -> bool:
        return review.undone_at is not None


def _target(project: Project, data: dict[str, Any]) -> tuple[Tile | None, Building | None, Review | None]:
    tile = building = added = None
    if data.get("tile") is not None:
        tile = Tile.objects.select_related("grid").filter(pk=data["tile"], grid__project=project).first()
        if tile is None:
            raise InvalidInput(_("There is no tile %(tile)s in this project.") % {"tile": data["tile"]},
                               fields={"tile": ["not found"]})
    if data.get("building") is not None:
        building = Building.objects.filter(pk=data["building"], project=project).first()
        if building is None:
            raise InvalidInput(_("There is no building %(building)s in this project.") % {"building": data["building"]},
                               fields={"building": ["not found"]})
    if data.get("added") is not None:
        added = Review.objects.filter(pk=data["added"], project=project, action=Review.Action.ADD).first()
        if added is None:
            raise InvalidInput(_("There is no building added by review %(review)s in this project.")
                               % {"review": data["added"]},
                               fields={"added": ["not found"]})
    return tile, building, added


@extend_schema(parameters=[OpenApiParameter("tile", int), OpenApiParameter("building", int),
                           OpenApiParameter("added", int, description="An added building's trail: its add review "
                                                                      "and every review of it."),
                           OpenApiParameter("live", int, enum=[0, 1], description="1: only reviews not undone.")])
class ReviewList(ListAPIView):
    """GET: the audit trail, newest first: who decided what, when, the state before and after, undone or not.
    POST: record a review (coordinators)."""

    serializer_class = ReviewOutput
    queryset = Review.objects.none()

    def get_queryset(self) -> QuerySet[Review]:
        if getattr(self, "swagger_fake_view", False):
            return self.queryset
        project = access_project(self.request.user, self.kwargs["slug"], coordinate=True)
        reviews = Review.objects.filter(project=project).select_related("reviewer", "undone_by")
        params = self.request.query_params
        for name in ("tile", "building", "added"):
            if params.get(name):
                if not params[name].isdigit():
                    raise InvalidInput(_("%(name)s must be an id.") % {"name": name}, fields={name: ["not an id"]})
                pk = int(params[name])
                reviews = reviews.filter(Q(added_id=pk) | Q(pk=pk, action=Review.Action.ADD)) if name == "added" \
                    else reviews.filter(**{f"{name}_id": pk})
        if params.get("live") == "1":
            reviews = reviews.filter(undone_at__isnull=True)
        return reviews.order_by("-created_at", "-id")

    @extend_schema(request=ReviewInput, responses={201: ReviewOutput})
    def post(self, request: Request, slug: str) -> Response:
        project = access_project(request.user, slug, coordinate=True)
        data = ReviewInput(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        tile, building, added = _target(project, values)
        review = create_review(project=project, reviewer=request.user, action=values["action"], tile=tile,
                               building=building, added=added, label=values.get("label", ""), lon=values.get("lon"),
                               lat=values.get("lat"), ground_x=values.get("ground_x"),
                               ground_y=values.get("ground_y"), note=values.get("note", ""))
        return Response(ReviewOutput(review).data, status=status.HTTP_201_CREATED)


class ReviewUndo(APIView):
    @extend_schema(request=None, responses={200: ReviewOutput})
    def post(self, request: Request, review_id: int) -> Response:
        """Undo a review: it stays in the trail, marked undone; the previous live review (or the crowd) decides."""
        review = Review.objects.select_related("project").filter(pk=review_id).first()
        if review is None or not can_view_project(request.user, review.project):
            raise NotFound(_("There is no review %(review)s that you can see.") % {"review": review_id})
        access_project(request.user, review.project.slug, coordinate=True)
        return Response(ReviewOutput(undo_review(review=review, user=request.user)).data)


class QueueItem(serializers.Serializer):
    kind = serializers.ChoiceField(choices=["tile", "building"])
    id = serializers.IntegerField()
    tile_id = serializers.IntegerField(allow_null=True, help_text="The tile to open it on.")
    confidence = serializers.FloatField()
    score = serializers.FloatField(help_text="Uncertainty times what is at stake; the queue's order.")


@extend_schema(parameters=[OpenApiParameter("kind", str, enum=["tile", "building"],
                                            description="Only tiles or only buildings; both by default.")],
               responses=QueueItem(many=True))
class ReviewQueue(APIView):
    def get(self, request: Request, slug: str) -> Response:
        """Contested tiles and uncertain buildings not reviewed yet, most valuable first, paginated (limit, offset).

        Tiles: (1 - confidence) x (1 + candidate buildings on the tile); buildings: (1 - 2|confidence - 0.5|) x
        (1 + volunteers who marked it)."""
        project = access_project(request.user, slug, coordinate=True)
        kind = request.query_params.get("kind") or None
        if kind not in (None, "tile", "building"):
            raise InvalidInput(_("kind must be tile or building."), fields={"kind": ["invalid choice"]})
        paginator = LimitOffsetPagination()
        page = paginator.paginate_queryset(review_queue(project=project, kind=kind), request, view=self)
        return paginator.get_paginated_response(page)


class ReviewTile(APIView):
    @extend_schema(responses={200: OpenApiTypes.OBJECT})
    def get(self, request: Request, slug: str, tile_id: int) -> Response:
        """A tile as the review page shows it: its images per date, the crowd's and the effective label, the buildings
        on it in tile pixels (effective location and confidence), and the reviews of the tile and its buildings."""
        project = access_project(request.user, slug, coordinate=True)
        tile = (Tile.objects.select_related("grid").prefetch_related("images__layer")
                .filter(pk=tile_id, grid__project=project).first())
        if tile is None:
            raise NotFound(_("There is no tile %(tile)s in this project.") % {"tile": tile_id})
        return Response(review_tile_json(project, tile))


def review_tile_json(project: Project, tile: Tile) -> dict[str, Any]:
    index = review_index(project=project)
    pixel = (tile.maxx - tile.minx) / tile.size
    consensus = TileConsensus.objects.filter(tile=tile).values("label", "confidence", "agreement", "counts",
                                                              "n_votes").first()

    def on_tile(x: float, y: float) -> dict[str, float] | None:
        if tile.minx <= x <= tile.maxx and tile.miny <= y <= tile.maxy:
            return {"x": round((x - tile.minx) / pixel, 2), "y": round((tile.maxy - y) / pixel, 2)}
        return None

    buildings = []
    near = Building.objects.filter(project=project, ground_x__gte=tile.minx - 50, ground_x__lte=tile.maxx + 50,
                                   ground_y__gte=tile.miny - 50, ground_y__lte=tile.maxy + 50)
    for b in near.order_by("-confidence", "id"):
        review = index.buildings.get(b.pk)
        state = building_state(b, review)
        shown = state or {"ground_x": b.ground_x, "ground_y": b.ground_y, "confidence": b.confidence}
        where = on_tile(shown["ground_x"], shown["ground_y"])
        if where:
            buildings.append({"id": b.pk, **where, "crowd_confidence": b.confidence, "confidence": shown["confidence"],
                              "n_support": b.n_support, "n_oppose": b.n_oppose, "rejected": state is None,
                              "review_action": review.action if review else None,
                              "review_id": review.pk if review else None, "classification_ids": b.classification_ids})
    for added in index.added_buildings:
        state = added_state(added)
        shown = state or {"ground_x": added.review.ground_x, "ground_y": added.review.ground_y}
        where = on_tile(shown["ground_x"], shown["ground_y"])
        if where:
            buildings.append({"id": None, "added": added.pk, **where, "crowd_confidence": None, "confidence": 1.0,
                              "n_support": 0, "n_oppose": 0, "rejected": state is None, "review_action": "add",
                              "review_id": added.pk, "latest_action": added.latest.action,
                              "latest_review_id": added.latest.pk, "classification_ids": []})
    images = sorted(tile.images.all(), key=lambda image: (image.layer.date, image.layer_id))
    return {
        "tile": {"id": tile.pk, "col": tile.col, "row": tile.row, "size": tile.size, "status": tile.status,
                 "bounds": [tile.minx, tile.miny, tile.maxx, tile.maxy], "pixel_size": pixel,
                 "bounds_wgs84": [tile.west, tile.south, tile.east, tile.north]},
        "images": [{"layer": image.layer_id, "date": image.layer.date.isoformat(),
                    "url": f"/api/v1/tiles/{tile.pk}/images/{image.layer_id}/"} for image in images],
        "consensus": consensus,
        "effective": tile_state(consensus, index.tiles.get(tile.pk)),
        "buildings": buildings,
    }


class Evidence(APIView):
    content_negotiation_class = JSONErrorsOnly

    @extend_schema(request=None, responses={(200, "application/zip"): OpenApiTypes.BINARY})
    def get(self, request: Request, slug: str) -> FileResponse:
        """The evidence bundle (zip): exports with and without reviews, classifications, gold, reviews, imagery
        checksums, grid, method, methodology and MANIFEST.sha256. Written to a temporary file, then streamed."""
        project = access_project(request.user, slug, coordinate=True)
        target = tempfile.TemporaryFile(suffix=".zip")  # gone when the response closes it
        write_evidence(project=project, target=target)
        target.seek(0)
        stamp = timezone.now().strftime("%Y%m%dT%H%M%SZ")
        return FileResponse(target, as_attachment=True, filename=f"{project.slug}-evidence-{stamp}.zip",
                            content_type="application/zip")

    @extend_schema(request=None, responses={(200, "application/zip"): OpenApiTypes.BINARY})
    def post(self, request: Request, slug: str) -> FileResponse:
        """The same bundle, for a form's button."""
        return self.get(request, slug)


class PublishOutput(serializers.Serializer):
    project = serializers.CharField()
    published_at = serializers.DateTimeField(allow_null=True)


class Publish(APIView):
    @extend_schema(request=None, responses=PublishOutput)
    def post(self, request: Request, slug: str) -> Response:
        """Publish the results to the project's volunteers (managers and admins); again keeps the first time."""
        project = access_project(request.user, slug, manage=True)
        Project.objects.filter(pk=project.pk, published_at__isnull=True).update(published_at=timezone.now())
        project.refresh_from_db()
        return Response({"project": project.slug, "published_at": project.published_at})

    @extend_schema(request=None, responses=PublishOutput)
    def delete(self, request: Request, slug: str) -> Response:
        """Take the results back from the volunteers."""
        project = access_project(request.user, slug, manage=True)
        Project.objects.filter(pk=project.pk).update(published_at=None)
        return Response({"project": project.slug, "published_at": None})
