"""The coordinators' consensus API: exports, recompute, volunteer reliability, and who said what.

Every endpoint here is for a project's coordinators (and its managers and admins); a volunteer gets
403, someone who cannot see the project 404. Exports stream, so a project of 200,000 tiles costs
constant memory.
"""

import shutil
import tempfile
from pathlib import Path
from typing import Any

from django.db.models import Prefetch, QuerySet
from django.http import FileResponse, StreamingHttpResponse
from django.utils.translation import gettext as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.generics import ListAPIView
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.throttling import BaseThrottle
from rest_framework.views import APIView

from config.errors import InvalidInput, NotAllowed, NotFound
from imagery.api import access_tile
from tagging.access import access_project, can_coordinate_project, can_view_project
from tagging.consensus_exports import consensus_summary, export_text, provenance
from tagging.gis_exports import kml_text, write_gpkg
from tagging.models import Building, Classification, Mark, Project, TileConsensus, VolunteerReliability
from tagging.tasks_api import ClassificationCreate

MIN_CONFIDENCE = OpenApiParameter("min_confidence", float, description="Buildings at least this sure (default 0.5).")
REVIEWS = OpenApiParameter("reviews", int, enum=[0, 1], description=(
    "1 (default): the coordinators' reviews applied; 0: the crowd's consensus alone."))


class JSONErrorsOnly(BaseContentNegotiation):
    """Exports answer in their own format whatever Accept says; only errors go through a renderer (JSON)."""

    def select_parser(self, request: Request, parsers: list[Any]) -> Any:
        return parsers[0] if parsers else None

    def select_renderer(self, request: Request, renderers: list[BaseRenderer],
                        format_suffix: str | None = None) -> tuple[BaseRenderer, str]:
        return JSONRenderer(), JSONRenderer.media_type


def _min_confidence(request: Request) -> float:
    text = request.query_params.get("min_confidence", "0.5")
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0.0 <= value <= 1.0:
        raise InvalidInput(_("min_confidence must be a number from 0 to 1, not '%(value)s'.") % {"value": text},
                           fields={"min_confidence": ["out of range"]})
    return value


def _reviews(request: Request) -> bool:
    text = request.query_params.get("reviews", "1")
    if text not in ("0", "1"):
        raise InvalidInput(_("reviews must be 1 (applied) or 0 (the crowd alone), not '%(value)s'.")
                           % {"value": text},
                           fields={"reviews": ["must be 0 or 1"]})
    return text == "1"


def _filename(project: Project, name: str, reviews: bool) -> str:
    stem, _, extension = name.rpartition(".")
    return f"{project.slug}-{stem}{'' if reviews else '-crowd'}.{extension}"


class _Export(APIView):
    content_negotiation_class = JSONErrorsOnly
    export_name = ""
    content_type = ""

    def get(self, request: Request, slug: str) -> StreamingHttpResponse:
        project = access_project(request.user, slug, coordinate=True)
        reviews = _reviews(request)
        options = {"project": project, "name": self.export_name, "base_url": request.build_absolute_uri("/")[:-1],
                   "min_confidence": _min_confidence(request), "reviews": reviews}
        chunks = kml_text(**options) if self.export_name.endswith(".kml") else export_text(**options)
        response = StreamingHttpResponse((chunk.encode() for chunk in chunks), content_type=self.content_type)
        response["Content-Disposition"] = f'attachment; filename="{_filename(project, self.export_name, reviews)}"'
        # A CSV file holds rows only; what it comes from (run, method, imagery, reviews) is described here.
        query = f"?reviews={int(reviews)}"
        response["Link"] = f'</api/v1/projects/{project.slug}/consensus/provenance.json{query}>; rel="describedby"'
        return response


@extend_schema(parameters=[REVIEWS], responses={(200, "application/geo+json"): OpenApiTypes.OBJECT})
class TilesGeoJSON(_Export):
    """Every tile with a consensus: WGS84 polygon, label, confidence, agreement, votes per answer, link to its votes."""

    export_name, content_type = "tiles.geojson", "application/geo+json"


@extend_schema(parameters=[REVIEWS], responses={(200, "text/csv"): OpenApiTypes.STR})
class TilesCSV(_Export):
    """The tiles' consensus as CSV: tile_id, tile_col, tile_row, label, confidence, agreement, count_<answer> ..."""

    export_name, content_type = "tiles.csv", "text/csv; charset=utf-8"


@extend_schema(parameters=[MIN_CONFIDENCE, REVIEWS],
               responses={(200, "application/geo+json"): OpenApiTypes.OBJECT})
class BuildingsGeoJSON(_Export):
    """Destroyed buildings as WGS84 points: confidence, location uncertainty, votes for and against, date window."""

    export_name, content_type = "buildings.geojson", "application/geo+json"


@extend_schema(parameters=[MIN_CONFIDENCE, REVIEWS], responses={(200, "text/csv"): OpenApiTypes.STR})
class BuildingsCSV(_Export):
    """The buildings as CSV, one row each, with the ids of the classifications behind them."""

    export_name, content_type = "buildings.csv", "text/csv; charset=utf-8"


@extend_schema(responses={(200, "application/vnd.google-earth.kml+xml"): OpenApiTypes.STR},
               parameters=[REVIEWS])
class TilesKML(_Export):
    """The tiles as KML polygons, every column in ExtendedData, the provenance in the Document's ExtendedData."""

    export_name, content_type = "tiles.kml", "application/vnd.google-earth.kml+xml"


@extend_schema(parameters=[MIN_CONFIDENCE, REVIEWS],
               responses={(200, "application/vnd.google-earth.kml+xml"): OpenApiTypes.STR})
class BuildingsKML(_Export):
    """The buildings as KML points, every column in ExtendedData, the provenance in the Document's ExtendedData."""

    export_name, content_type = "buildings.kml", "application/vnd.google-earth.kml+xml"


class _GeoPackage(APIView):
    """A GeoPackage is an SQLite file: written to a temporary folder, then streamed from the open file."""

    content_negotiation_class = JSONErrorsOnly
    export_name = ""

    def get(self, request: Request, slug: str) -> FileResponse:
        project = access_project(request.user, slug, coordinate=True)
        reviews = _reviews(request)
        folder = Path(tempfile.mkdtemp(prefix="gpkg-"))
        try:
            path = write_gpkg(project=project, name=self.export_name, path=folder / self.export_name,
                              base_url=request.build_absolute_uri("/")[:-1], min_confidence=_min_confidence(request),
                              reviews=reviews)
            handle = path.open("rb")  # the open handle keeps the bytes once the folder is gone (POSIX)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        return FileResponse(handle, as_attachment=True, filename=_filename(project, self.export_name, reviews),
                            content_type="application/geopackage+sqlite3")


@extend_schema(parameters=[REVIEWS], responses={(200, "application/geopackage+sqlite3"): OpenApiTypes.BINARY})
class TilesGeoPackage(_GeoPackage):
    """The tiles as a GeoPackage layer "tiles" (WGS84 polygons); the provenance is the layer's metadata."""

    export_name = "tiles.gpkg"


@extend_schema(parameters=[MIN_CONFIDENCE, REVIEWS],
               responses={(200, "application/geopackage+sqlite3"): OpenApiTypes.BINARY})
class BuildingsGeoPackage(_GeoPackage):
    """The buildings as a GeoPackage layer "buildings" (WGS84 points); the provenance is the layer's metadata."""

    export_name = "buildings.gpkg"


class Provenance(APIView):
    @extend_schema(parameters=[REVIEWS], responses={200: OpenApiTypes.OBJECT})
    def get(self, request: Request, slug: str) -> Response:
        """Where the exports come from: project, imagery layers (dates, file checksums), consensus run (method,
        parameters), whether reviews are applied, time. The same object as a GeoJSON export's "properties"."""
        project = access_project(request.user, slug, coordinate=True)
        return Response(provenance(project=project, kind="consensus", reviews=_reviews(request)))


class RunOutput(serializers.Serializer):
    id = serializers.IntegerField()
    method = serializers.CharField()
    parameters = serializers.DictField()
    counts = serializers.DictField()
    timings = serializers.DictField()
    started_at = serializers.CharField()
    finished_at = serializers.CharField(allow_null=True)


class SummaryOutput(serializers.Serializer):
    project = serializers.CharField()
    tiles = serializers.DictField(child=serializers.IntegerField(), help_text="Tiles per status.")
    labels = serializers.DictField(child=serializers.IntegerField(), help_text="Tiles per consensus label.")
    buildings = serializers.IntegerField(help_text="Buildings at least 0.5 sure.")
    run = RunOutput(allow_null=True)


class ConsensusSummary(APIView):
    @extend_schema(responses=SummaryOutput)
    def get(self, request: Request, slug: str) -> Response:
        """Tiles per status and label, buildings found, and the latest consensus run with its method and parameters."""
        project = access_project(request.user, slug, coordinate=True)
        return Response(consensus_summary(project=project))


class RecomputeOutput(serializers.Serializer):
    project = serializers.CharField()
    status = serializers.CharField()


class Recompute(APIView):
    @extend_schema(request=None, responses={202: RecomputeOutput})
    def post(self, request: Request, slug: str) -> Response:
        """Re-estimate the whole consensus now (reliability included); answers at once, a worker does it."""
        from workers.tagging import recompute_project_task

        project = access_project(request.user, slug, coordinate=True)
        recompute_project_task.delay_on_commit(project.pk)
        return Response({"project": project.slug, "status": "enqueued"}, status=status.HTTP_202_ACCEPTED)


class ReliabilityOutput(serializers.ModelSerializer):
    volunteer = serializers.CharField(source="volunteer.username", help_text="The volunteer's pseudonym.")

    class Meta:
        model = VolunteerReliability
        fields = ["volunteer", "reliability", "accuracy", "n_votes", "n_gold", "n_gold_correct", "hit_rate",
                  "false_rate", "confusion", "updated_at"]


RELIABILITY_ORDERINGS = ["reliability", "-reliability", "n_votes", "-n_votes", "n_gold", "-n_gold"]


@extend_schema(parameters=[OpenApiParameter("ordering", str, enum=RELIABILITY_ORDERINGS,
                                             description="Default -n_votes.")])
class ReliabilityList(ListAPIView):
    """Per volunteer (pseudonym): reliability, the gold tiles it rests on, votes; from the latest consensus run."""

    serializer_class = ReliabilityOutput
    queryset = VolunteerReliability.objects.none()  # for the schema; the real one depends on the project

    def get_queryset(self) -> QuerySet[VolunteerReliability]:
        if getattr(self, "swagger_fake_view", False):
            return self.queryset
        project = access_project(self.request.user, self.kwargs["slug"], coordinate=True)
        ordering = self.request.query_params.get("ordering", "-n_votes")
        if ordering not in RELIABILITY_ORDERINGS:
            raise InvalidInput(_("ordering must be one of %(choices)s.")
                               % {"choices": ", ".join(RELIABILITY_ORDERINGS)},
                               fields={"ordering": ["invalid choice"]})
        return (VolunteerReliability.objects.filter(project=project).select_related("volunteer")
                .order_by(ordering, "volunteer__username"))


class VoteMarkOutput(serializers.Serializer):
    id = serializers.IntegerField()
    x = serializers.FloatField()
    y = serializers.FloatField()
    ground_x = serializers.FloatField()
    ground_y = serializers.FloatField()
    date = serializers.DateField(allow_null=True)


class VoteOutput(serializers.Serializer):
    id = serializers.IntegerField()
    tile = serializers.IntegerField()
    tile_col = serializers.IntegerField()
    tile_row = serializers.IntegerField()
    volunteer = serializers.CharField(allow_null=True, help_text="Pseudonym; null for a deleted account.")
    volunteer_reliability = serializers.FloatField(allow_null=True)
    answer = serializers.CharField()
    marks = VoteMarkOutput(many=True)
    seconds = serializers.FloatField(allow_null=True)
    too_fast = serializers.BooleanField(help_text="Kept out of the consensus.")
    is_gold = serializers.BooleanField()
    source = serializers.CharField()
    created_at = serializers.DateTimeField()


class TileConsensusOutput(serializers.ModelSerializer):
    class Meta:
        model = TileConsensus
        fields = ["label", "confidence", "agreement", "counts", "n_votes", "n_decisive", "method", "run",
                  "updated_at"]


class TileVotesOutput(serializers.Serializer):
    tile = serializers.DictField()
    consensus = TileConsensusOutput(allow_null=True)
    classifications = VoteOutput(many=True)


def votes_json(project: Project, classifications: QuerySet[Classification]) -> list[dict[str, Any]]:
    """Who said what: each classification with its volunteer's pseudonym and reliability, and its marks."""
    rows = list(classifications.select_related("volunteer", "tile").prefetch_related(
        Prefetch("marks", queryset=Mark.objects.select_related("layer").order_by("id"))).order_by("created_at", "id"))
    reliability = dict(VolunteerReliability.objects.filter(
        project=project, volunteer_id__in={c.volunteer_id for c in rows if c.volunteer_id}).values_list(
        "volunteer_id", "reliability"))
    return [{
        "id": c.pk, "tile": c.tile_id, "tile_col": c.tile.col, "tile_row": c.tile.row,
        "volunteer": c.volunteer.username if c.volunteer else None,
        "volunteer_reliability": reliability.get(c.volunteer_id), "answer": c.answer,
        "marks": [{"id": m.pk, "x": m.x, "y": m.y, "ground_x": m.ground_x, "ground_y": m.ground_y,
                   "date": m.layer.date if m.layer else None} for m in c.marks.all()],
        "seconds": c.seconds, "too_fast": c.too_fast, "is_gold": c.is_gold, "source": c.source,
        "created_at": c.created_at} for c in rows]


class TileClassifications(ClassificationCreate):
    """POST: a volunteer answers the tile (see ClassificationCreate). GET: coordinators see who said what."""

    def get_throttles(self) -> list[BaseThrottle]:
        # The submit rate limit is for answers, not for a coordinator reading them.
        return [] if self.request.method == "GET" else super().get_throttles()

    @extend_schema(responses=TileVotesOutput)
    def get(self, request: Request, tile_id: int) -> Response:
        """Every classification of the tile: volunteer (pseudonym) and reliability, answer, marks, time spent."""
        tile = access_tile(request.user, tile_id)
        project = tile.grid.project
        if not can_coordinate_project(request.user, project):
            raise NotAllowed(_("Only the project's coordinators may see who said what on a tile."))
        consensus = TileConsensus.objects.filter(tile=tile).first()
        return Response({
            "tile": {"id": tile.pk, "col": tile.col, "row": tile.row, "status": tile.status,
                     "vote_count": tile.vote_count, "bounds_wgs84": [tile.west, tile.south, tile.east, tile.north]},
            "consensus": TileConsensusOutput(consensus).data if consensus else None,
            "classifications": votes_json(project, Classification.objects.filter(tile=tile)),
        })


class BuildingOutput(serializers.ModelSerializer):
    class Meta:
        model = Building
        fields = ["id", "lon", "lat", "ground_x", "ground_y", "confidence", "uncertainty_m", "n_support", "n_oppose",
                  "is_gold", "last_intact", "first_destroyed", "window_confidence", "run", "updated_at"]


class BuildingVotesOutput(serializers.Serializer):
    building = BuildingOutput()
    supporting = VoteOutput(many=True, help_text="Classifications that marked the building (their marks on it).")
    opposing = VoteOutput(many=True, help_text="Classifications that saw the spot and did not mark it.")


class BuildingClassifications(APIView):
    @extend_schema(responses=BuildingVotesOutput)
    def get(self, request: Request, building_id: int) -> Response:
        """The evidence behind a building: who marked it (and where), who saw the spot and did not."""
        building = Building.objects.select_related("project").filter(pk=building_id).first()
        if building is None or not can_view_project(request.user, building.project):
            raise NotFound(_("There is no building %(building)s that you can see.") % {"building": building_id})
        project = building.project
        if not can_coordinate_project(request.user, project):
            raise NotAllowed(_("Only the project's coordinators may see the evidence behind a building."))
        supporting = votes_json(project, Classification.objects.filter(pk__in=building.classification_ids))
        on_building = set(building.mark_ids)
        for vote in supporting:
            vote["marks"] = [mark for mark in vote["marks"] if mark["id"] in on_building]
        return Response({
            "building": BuildingOutput(building).data,
            "supporting": supporting,
            "opposing": votes_json(project, Classification.objects.filter(pk__in=building.opposing_classification_ids)),
        })
