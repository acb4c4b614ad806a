"""The coordinators' consensus map page. It reads everything through the JSON API (tagging/map_api.py and
the layers' XYZ tiles, imagery/xyz.py); the view only checks the role and hands the page its layers."""

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render

from config.errors import NotAllowed, PlatformError
from imagery.models import Grid
from imagery.xyz import xyz_layers
from tagging.access import access_project
from tagging.map_layers import CONTESTED_AGREEMENT, CONTESTED_CONFIDENCE, grid_extent


@login_required
def map_page(request: HttpRequest, slug: str) -> HttpResponse:
    """The map for the project's coordinators (managers and admins too); a volunteer gets 403."""
    try:
        project = access_project(request.user, slug, coordinate=True)
    except NotAllowed as exc:
        raise PermissionDenied(exc.message) from exc
    except PlatformError as exc:
        raise Http404(exc.message) from exc
    layers = [layer.to_json() for layer in xyz_layers(project)]
    grid = Grid.objects.filter(project=project).first()
    extent = list(grid_extent(grid.spec())) if grid else None
    if extent is None and layers:
        extent = layers[-1]["bounds"]
    config = {
        "slug": project.slug,
        "layers": layers,
        "extent": extent,
        "answers": [{"key": a["key"], "label": a["label"], "damage": bool(a.get("damage")),
                     "abstain": bool(a.get("abstain"))} for a in project.answers],
        "redundancy": project.redundancy,
        "contested": {"agreement": CONTESTED_AGREEMENT, "confidence": CONTESTED_CONFIDENCE},
        "tiles_url": f"/api/v1/projects/{project.slug}/map/tiles.geojson",
        "buildings_url": f"/api/v1/projects/{project.slug}/map/buildings.geojson",
    }
    return render(request, "tagging/map.html", {"project": project, "config": config,
                                                "dates": [layer["date"] for layer in layers]})
