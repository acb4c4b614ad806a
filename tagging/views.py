"""Pages. They read through the same JSON API as any client; the views only pick the template."""

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render

from config.errors import PlatformError
from tagging.access import access_project, can_manage_project
from tagging.api import visible_projects


def home(request: HttpRequest) -> HttpResponse:
    projects = visible_projects(request.user) if request.user.is_authenticated else []
    return render(request, "tagging/home.html", {"projects": projects})


@login_required
def project_page(request: HttpRequest, slug: str) -> HttpResponse:
    try:
        project = access_project(request.user, slug)
    except PlatformError as exc:
        raise Http404(exc.message) from exc
    return render(request, "tagging/project.html",
                  {"project": project, "can_manage": can_manage_project(request.user, project)})
