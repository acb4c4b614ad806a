"""The review page (coordinators) and the results page (volunteers, once the results are published).

The review page reads everything through the JSON API (tagging/review_api.py, the classifications
of a tile); the view checks the role and hands the page its settings.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render

from config.errors import NotAllowed, PlatformError
from tagging.access import access_project, can_coordinate_project, can_manage_project
from tagging.consensus_exports import building_records
from tagging.models import Classification, Project
from tagging.review_api import results_visible

RESULTS_SHOWN = 500  # buildings listed on the results page, most certain first


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


def contribution(project: Project, user: Any, buildings: list[dict[str, Any]]) -> dict[str, Any]:
    """What the volunteer gave: tiles tagged, buildings marked, and how many of those the consensus confirmed
    (confidence at least 0.5 with their classification among its classification_ids)."""
    mine = set(Classification.objects.filter(project=project, volunteer=user).values_list("id", flat=True))
    marked = [b for b in buildings if mine.intersection(b["classification_ids"])]
    return {"tiles": len(mine), "buildings_marked": len(marked),
            "buildings_confirmed": sum(1 for b in marked if b["confidence"] >= 0.5),
            "marked_ids": {b["building_id"] for b in marked}}


@login_required
def results_page(request: HttpRequest, slug: str) -> HttpResponse:
    """The published results: the consensus buildings (reviews applied) and the volunteer's own contribution.
    404 for volunteers until the project is published, and for those who did not work on it."""
    try:
        project = access_project(request.user, slug)
    except PlatformError as exc:
        raise Http404(exc.message) from exc
    if not results_visible(request.user, project):
        raise Http404("The results of this project are not published.")
    buildings = list(building_records(project=project, min_confidence=0.0))
    mine = contribution(project, request.user, buildings)
    found = [b for b in buildings if b["confidence"] >= 0.5]
    found.sort(key=lambda b: -b["confidence"])
    return render(request, "tagging/results.html", {
        "project": project, "contribution": mine, "count": len(found), "buildings": found[:RESULTS_SHOWN],
        "shown": min(len(found), RESULTS_SHOWN), "nav_current": "results",
        "can_coordinate": can_coordinate_project(request.user, project),
        "can_manage": can_manage_project(request.user, project)})
