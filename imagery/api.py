"""Imagery API: layers (upload, status, retry), tiles (list by bounding box) and tile images."""

from typing import Any

from django.core.files.storage import FileSystemStorage, default_storage
from django.db.models import QuerySet
from django.http import FileResponse, HttpResponse, HttpResponseBase, HttpResponseNotModified, HttpResponseRedirect
from django.utils.cache import patch_cache_control
from django.utils.translation import gettext as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.generics import ListAPIView
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from config.errors import InvalidInput, NotAllowed, NotFound
from imagery.ingest import create_layer, stage_all
from imagery.jobs import retry_layer
from imagery.models import ImageryLayer, Tile, TileImage
from tagging.access import access_project, can_coordinate_project, can_manage_project, can_view_project


class LayerInput(serializers.Serializer):
    date = serializers.DateField()
    source = serializers.CharField(max_length=300, required=False, allow_blank=True, default="")
    files = serializers.ListField(child=serializers.FileField(allow_empty_file=True), allow_empty=False)
    bands = serializers.CharField(required=False, allow_blank=True, default="",
                                  help_text="Comma-separated 1-based bands shown as red,green,blue (or one band).")


class LayerFileOutput(serializers.Serializer):
    position = serializers.IntegerField()
    original_name = serializers.CharField()
    sha256 = serializers.CharField()
    size_bytes = serializers.IntegerField()


class LayerOutput(serializers.ModelSerializer):
    project = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    files = LayerFileOutput(many=True, read_only=True)
    progress = serializers.SerializerMethodField()

    class Meta:
        model = ImageryLayer
        fields = ["id", "project", "date", "source", "status", "progress", "tiles_done", "tiles_total",
                  "tile_count", "error", "crs", "bounds", "bounds_wgs84", "resolution", "width", "height",
                  "band_count", "dtype", "display", "files", "created_at", "updated_at"]

    def get_progress(self, layer: ImageryLayer) -> float:
        if layer.status == ImageryLayer.Status.READY:
            return 1.0
        return round(layer.tiles_done / layer.tiles_total, 4) if layer.tiles_total else 0.0


def _parse_bands(text: str) -> list[int] | None:
    if not text.strip():
        return None
    try:
        return [int(part) for part in text.split(",")]
    except ValueError as exc:
        raise InvalidInput(_("bands must be comma-separated band numbers such as 3,2,1."),
                           fields={"bands": ["invalid"]}) from exc


class LayerList(APIView):
    parser_classes = [MultiPartParser, FormParser]

    @extend_schema(responses=LayerOutput(many=True))
    def get(self, request: Request, slug: str) -> Response:
        project = access_project(request.user, slug)
        layers = project.layers.prefetch_related("files")
        return Response(LayerOutput(layers, many=True).data)

    @extend_schema(request=LayerInput, responses={202: LayerOutput})
    def post(self, request: Request, slug: str) -> Response:
        """Add one date of imagery (several files form a mosaic); answers at once, tiling runs on workers."""
        # Permission first: reading the body (and any 415 for a wrong content type) comes after it.
        project = access_project(request.user, slug, manage=True)
        uploads = request.FILES.getlist("files")
        try:
            data = LayerInput(data={**request.data.dict(), "files": uploads})
            data.is_valid(raise_exception=True)
            bands = _parse_bands(data.validated_data["bands"])
            layer = create_layer(project=project, date=data.validated_data["date"], staged=stage_all(uploads),
                                 source=data.validated_data["source"], user=request.user, bands=bands)
        finally:
            for upload in uploads:
                upload.close()  # Django's temporary upload files go now, whatever happened
        return Response(LayerOutput(layer).data, status=status.HTTP_202_ACCEPTED)


def access_layer(user: Any, layer_id: int, *, manage: bool = False) -> ImageryLayer:
    layer = ImageryLayer.objects.select_related("project").prefetch_related("files").filter(pk=layer_id).first()
    if layer is None or not can_view_project(user, layer.project):
        raise NotFound(_("There is no imagery layer %(layer)s that you can see.") % {"layer": layer_id})
    if manage:
        access_project(user, layer.project.slug, manage=True)
    return layer


class LayerDetail(APIView):
    @extend_schema(responses=LayerOutput)
    def get(self, request: Request, layer_id: int) -> Response:
        layer = access_layer(request.user, layer_id)
        if not can_manage_project(request.user, layer.project):
            return Response({key: value for key, value in LayerOutput(layer).data.items() if key != "files"})
        return Response(LayerOutput(layer).data)


class LayerRetry(APIView):
    @extend_schema(request=None, responses={202: LayerOutput})
    def post(self, request: Request, layer_id: int) -> Response:
        """Start a failed layer's tiling again (its finished chunks are kept)."""
        layer = access_layer(request.user, layer_id, manage=True)
        if layer.status != ImageryLayer.Status.FAILED:
            raise InvalidInput(_("Layer %(layer)s is %(status)s, not failed; there is nothing to retry.")
                               % {"layer": layer_id, "status": layer.status})
        retry_layer(layer_id=layer.pk)
        layer.refresh_from_db()
        return Response(LayerOutput(layer).data, status=status.HTTP_202_ACCEPTED)


class TileImageOutput(serializers.Serializer):
    layer = serializers.IntegerField(source="layer_id")
    date = serializers.DateField(source="layer.date")
    url = serializers.SerializerMethodField()

    def get_url(self, image: TileImage) -> str:
        return f"/api/v1/tiles/{image.tile_id}/images/{image.layer_id}/"


class TileOutput(serializers.ModelSerializer):
    images = TileImageOutput(many=True, read_only=True)
    bounds = serializers.SerializerMethodField()
    bounds_wgs84 = serializers.SerializerMethodField()

    class Meta:
        model = Tile
        fields = ["id", "col", "row", "x_off", "y_off", "size", "bounds", "bounds_wgs84", "status", "vote_count",
                  "priority", "images"]

    def get_bounds(self, tile: Tile) -> list[float]:
        return [tile.minx, tile.miny, tile.maxx, tile.maxy]

    def to_representation(self, tile: Tile) -> dict[str, Any]:
        data = super().to_representation(tile)
        if not self.context.get("coordinator"):
            # A volunteer must not tell gold tiles from others, nor see how the crowd is progressing on a tile.
            for name in ("status", "vote_count", "priority"):
                data.pop(name)
        return data

    def get_bounds_wgs84(self, tile: Tile) -> list[float]:
        return [tile.west, tile.south, tile.east, tile.north]


def _parse_bbox(text: str) -> tuple[float, float, float, float]:
    try:
        west, south, east, north = (float(part) for part in text.split(","))
    except ValueError as exc:
        raise InvalidInput(_("bbox must be west,south,east,north in degrees."), fields={"bbox": ["invalid"]}) from exc
    if not (-180 <= west <= east <= 180 and -90 <= south <= north <= 90):
        raise InvalidInput(_("bbox must be west,south,east,north with west<=east and south<=north, in degrees."),
                           fields={"bbox": ["invalid"]})
    return west, south, east, north


@extend_schema(parameters=[
    OpenApiParameter("bbox", str, description="west,south,east,north (WGS84): tiles that intersect it"),
    OpenApiParameter("status", str, enum=[s.value for s in Tile.Status]),
])
class TileList(ListAPIView):
    serializer_class = TileOutput

    queryset = Tile.objects.none()  # for the schema; the real one depends on the project

    def get_queryset(self) -> QuerySet[Tile]:
        if getattr(self, "swagger_fake_view", False):
            return self.queryset
        project = access_project(self.request.user, self.kwargs["slug"])
        self.coordinator = can_coordinate_project(self.request.user, project)
        tiles = Tile.objects.filter(grid__project=project).prefetch_related("images__layer")
        params = self.request.query_params
        if params.get("status") and not self.coordinator:
            raise NotAllowed(_("Only the project's coordinators filter tiles by status."))
        if params.get("bbox"):
            west, south, east, north = _parse_bbox(params["bbox"])
            tiles = tiles.filter(west__lte=east, east__gte=west, south__lte=north, north__gte=south)
        if params.get("status"):
            tiles = tiles.filter(status=params["status"])
        return tiles.order_by("row", "col")

    def get_serializer_context(self) -> dict[str, Any]:
        return {**super().get_serializer_context(), "coordinator": getattr(self, "coordinator", False)}


class TileDetail(APIView):
    @extend_schema(responses=TileOutput)
    def get(self, request: Request, tile_id: int) -> Response:
        tile = access_tile(request.user, tile_id)
        coordinator = can_coordinate_project(request.user, tile.grid.project)
        return Response(TileOutput(tile, context={"coordinator": coordinator}).data)


def access_tile(user: Any, tile_id: int) -> Tile:
    tile = Tile.objects.select_related("grid__project").filter(pk=tile_id).first()
    if tile is None or not can_view_project(user, tile.grid.project):
        raise NotFound(_("There is no tile %(tile)s that you can see.") % {"tile": tile_id})
    return tile


class TileImageView(APIView):
    """The tile's image in one layer. Immutable for its ETag: cached by the browser for a year."""

    @extend_schema(responses={(200, "image/webp"): OpenApiTypes.BINARY, 304: None})
    def get(self, request: Request, tile_id: int, layer_id: int) -> HttpResponseBase:
        tile = access_tile(request.user, tile_id)
        image = TileImage.objects.filter(tile=tile, layer_id=layer_id).first()
        if image is None:
            raise NotFound(_("Tile %(tile)s has no image in layer %(layer)s.") % {"tile": tile_id, "layer": layer_id})
        etag = f'"{image.etag}"'
        if etag in request.headers.get("If-None-Match", ""):
            response: HttpResponse = HttpResponseNotModified()
        elif isinstance(default_storage, FileSystemStorage):
            response = FileResponse(default_storage.open(image.key, "rb"), content_type=image.content_type)
            response["Content-Length"] = str(image.size_bytes)
        else:
            # Object storage serves the bytes itself, through a short-lived signed URL.
            response = HttpResponseRedirect(default_storage.url(image.key))
            patch_cache_control(response, private=True, max_age=300)
            return response
        response["ETag"] = etag
        patch_cache_control(response, private=True, max_age=31536000, immutable=True)
        return response
