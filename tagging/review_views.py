"""The review page (coordinators) and the results page (volunteers, once the results are published).

Both read everything through the JSON API (tagging/review_api.py and the classifications of a tile;
tagging/results_api.py and the imagery's XYZ tiles); the views check the role and hand the page its
settings.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db.models import Max, Min
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.html import escape, format_html
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import gettext as _

from config.errors import NotAllowed, PlatformError
from imagery.models import Tile
from imagery.xyz import SERVABLE, xyz_layer
from tagging.access import access_project, can_coordinate_project, can_manage_project
from tagging.manage_views import forbidden
from tagging.models import Project
from tagging.results import confirmed_buildings_of, contribution, results_visible

RESULTS_LISTED = 200  # confirmed buildings of the volunteer listed beside the map, most certain first


@login_required
def review_page(request: HttpRequest, slug: str) -> HttpResponse:
    """The review page for the project's coordinators (managers and admins too); a volunteer gets 403."""
    try:
        project = access_project(request.user, slug, coordinate=True)
    except NotAllowed as exc:
        raise PermissionDenied(exc.message) from exc
    except PlatformError as exc:
        raise Http404(exc.message) from exc
    config = {
        "slug": project.slug,
        "answers": [{"key": a["key"], "label": a["label"]} for a in project.answers],
        "queue_url": f"/api/v1/projects/{project.slug}/review/queue/",
        "tile_url": f"/api/v1/projects/{project.slug}/review/tiles/",
        "reviews_url": f"/api/v1/projects/{project.slug}/reviews/",
        "evidence_url": f"/api/v1/projects/{project.slug}/evidence.zip",
    }
    return render(request, "tagging/review.html", {
        "project": project, "config": config, "can_coordinate": True, "nav_current": "review",
        "can_manage": can_manage_project(request.user, project)})


def imagery_layers(project: Project) -> list[dict[str, Any]]:
    """The layers the results map can show, oldest first; a layer whose display is not set yet is left out (it
    cannot be rendered: crowds imported without imagery, layers still being validated)."""
    layers = project.layers.filter(status__in=SERVABLE).prefetch_related("files").order_by("date", "id")
    return [xyz_layer(layer).to_json() for layer in layers if (layer.display or {}).get("bands")]


@login_required
def results_page(request: HttpRequest, slug: str) -> HttpResponse:
    """The published results as a map: the consensus tiles and buildings (reviews applied) with the volunteer's own
    tiles and confirmed buildings highlighted, and their contribution in figures. The map reads
    tagging/results_api.py. 404 for who cannot see the project; a 403 page for members who may not see the
    results (not published yet, or they tagged nothing)."""
    try:
        project = access_project(request.user, slug)
    except PlatformError as exc:
        raise Http404(exc.message) from exc
    if not results_visible(request.user, project):
        message = (_("The results of this project are not published yet.") if project.published_at is None
                   else _("The results are shown to the volunteers who tagged tiles of this project."))
        return forbidden(request, message, back=f"/projects/{slug}/", back_label=_("Back to the project"))
    layers = imagery_layers(project)
    box = Tile.objects.filter(grid__project=project).aggregate(w=Min("west"), s=Min("south"), e=Max("east"),
                                                               n=Max("north"))
    extent = [box["w"], box["s"], box["e"], box["n"]] if box["w"] is not None else None
    if extent is None and layers:
        extent = layers[-1]["bounds"]
    config = {
        "slug": project.slug, "layers": layers, "extent": extent,
        "answers": [{"key": a["key"], "label": a["label"], "damage": bool(a.get("damage"))} for a in project.answers],
        "tiles_url": f"/api/v1/projects/{project.slug}/results/tiles.geojson",
        "buildings_url": f"/api/v1/projects/{project.slug}/results/buildings.geojson",
    }
    mine = confirmed_buildings_of(project=project, volunteer=request.user, limit=RESULTS_LISTED)
    for building in mine:
        building["destroyed"] = destroyed_window(building.get("last_intact"), building.get("first_destroyed"))
    return render(request, "tagging/results.html", {
        "project": project, "config": config, "contribution": contribution(project=project, volunteer=request.user),
        "mine": mine,
        "nav_current": "results", "can_coordinate": can_coordinate_project(request.user, project),
        "can_manage": can_manage_project(request.user, project)})


def destroyed_window(last_intact: str | None, first_destroyed: str | None) -> SafeString | str:
    """When a building was destroyed, as a sentence for the results page. Each date is isolated and kept on one
    line (<bdi class="date">): a line break inside "2017-05-01", or the digits and hyphens of a date read
    right-to-left in Arabic, scrambles it."""
    if not first_destroyed:
        return "–"

    def date(value: str) -> SafeString:
        return format_html('<bdi class="date">{}</bdi>', value)

    if last_intact:
        return mark_safe(escape(_("between %(a)s and %(z)s")) % {"a": date(last_intact), "z": date(first_destroyed)})
    return mark_safe(escape(_("by %(z)s")) % {"z": date(first_destroyed)})
