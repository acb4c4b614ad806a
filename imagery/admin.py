"""Admin pages for imagery. Adding a layer uploads files through the same path as the API."""

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html

from config.errors import PlatformError
from imagery.ingest import create_layer, stage_all
from imagery.jobs import retry_layer
from imagery.models import Grid, ImageryLayer, LayerFile, Tile
from tagging.access import can_manage_project
from tagging.models import Project


class MultipleFileInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class MultipleFileField(forms.FileField):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("widget", MultipleFileInput())
        super().__init__(*args, **kwargs)

    def clean(self, data: Any, initial: Any = None) -> list[Any]:
        single = super().clean
        return [single(item, initial) for item in data] if isinstance(data, (list, tuple)) else [single(data, initial)]


class LayerUploadForm(forms.Form):
    project = forms.ModelChoiceField(queryset=Project.objects.all())
    date = forms.DateField(help_text="Acquisition date, YYYY-MM-DD.")
    source = forms.CharField(required=False, max_length=300, help_text="Provider, sensor or scene id.")
    files = MultipleFileField(help_text="One GeoTIFF, or several that form a mosaic of one date.")


class LayerFileInline(admin.TabularInline):
    model = LayerFile
    extra = 0
    can_delete = False
    readonly_fields = ["position", "original_name", "sha256", "size_bytes", "path", "read_path"]


@admin.register(ImageryLayer)
class ImageryLayerAdmin(admin.ModelAdmin):
    list_display = ["project", "date", "source", "status", "progress", "tile_count", "created_at"]
    list_filter = ["status", "project"]
    readonly_fields = ["project", "crs", "bounds", "bounds_wgs84", "resolution", "width", "height", "band_count",
                       "dtype", "display", "status", "tiles_total", "tiles_done", "tile_count", "error",
                       "created_by", "created_at", "updated_at"]
    inlines = [LayerFileInline]
    actions = ["retry_tiling"]

    @admin.display(description="progress")
    def progress(self, layer: ImageryLayer) -> str:
        pct = 100 if layer.status == ImageryLayer.Status.READY else (
            round(100 * layer.tiles_done / layer.tiles_total) if layer.tiles_total else 0)
        return format_html('<progress max="100" value="{}"></progress> {}%', pct, pct)

    def add_view(self, request: HttpRequest, form_url: str = "", extra_context: Any = None) -> HttpResponse:
        form = LayerUploadForm(request.POST or None, request.FILES or None)
        if request.method == "POST" and form.is_valid():
            project = form.cleaned_data["project"]
            if not can_manage_project(request.user, project):
                form.add_error("project", "You may not manage this project.")
            else:
                try:
                    layer = create_layer(project=project, date=form.cleaned_data["date"],
                                         staged=stage_all(form.cleaned_data["files"]),
                                         source=form.cleaned_data["source"], user=request.user)
                except PlatformError as exc:
                    form.add_error("files", exc.message)
                else:
                    messages.success(request, f"Layer {layer.pk} stored; tiling runs in the background.")
                    return HttpResponseRedirect(reverse("admin:imagery_imagerylayer_change", args=[layer.pk]))
        context = {**self.admin_site.each_context(request), "title": "Add imagery", "form": form,
                   "opts": self.model._meta, **(extra_context or {})}
        return self._render_upload(request, context)

    def _render_upload(self, request: HttpRequest, context: dict) -> HttpResponse:
        return TemplateResponse(request, "admin/imagery/upload.html", context)

    @admin.action(description="Retry tiling of failed layers")
    def retry_tiling(self, request: HttpRequest, queryset: Any) -> None:
        for layer in queryset.filter(status=ImageryLayer.Status.FAILED):
            retry_layer(layer_id=layer.pk)


@admin.register(Grid)
class GridAdmin(admin.ModelAdmin):
    list_display = ["project", "crs", "pixel_size", "width", "height", "tile_size", "overlap"]
    readonly_fields = [f.name for f in Grid._meta.fields]


@admin.register(Tile)
class TileAdmin(admin.ModelAdmin):
    list_display = ["grid", "col", "row", "status", "vote_count", "priority"]
    list_filter = ["status", "grid__project"]
    readonly_fields = ["grid", "col", "row", "x_off", "y_off", "size", "minx", "miny", "maxx", "maxy",
                       "west", "south", "east", "north"]
