"""The coordinators' and managers' pages: dashboard, project form, imagery upload, gold tiles, members.

Like the volunteers' pages, they only pick a template; the scripts read and write through the JSON
API (tagging.admin_api, tagging.api, imagery.api). Someone who cannot see the project gets 404; a
member without the role a page needs gets a 403 page.
"""

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseForbidden
from django.shortcuts import render
from django.template import engines
from django.utils.translation import gettext as _

from config.errors import NotAllowed, NotFound
from tagging.access import access_project, can_coordinate_project, can_manage_project, is_platform_admin
from tagging.models import Project
from tagging.projects import answers_locked

FORBIDDEN = """{% extends "base.html" %}
{% block title %}{{ title }}{% endblock %}
{% block content %}<h1>{{ title }}</h1><p>{{ message }}</p>
<p><a href="{{ back }}">{{ back_label }}</a></p>{% endblock %}"""


def forbidden(request: HttpRequest, message: str, *, back: str = "/", back_label: str = "") -> HttpResponse:
    """A 403 page in the site's frame, in the visitor's language."""
    html = engines["django"].from_string(FORBIDDEN).render({
        "title": _("You may not open this page"), "message": message, "back": back,
        "back_label": back_label or _("Back to the projects"),
    }, request)
    return HttpResponseForbidden(html)


def _context(request: HttpRequest, project: Project, current: str, **extra: object) -> dict[str, object]:
    """What every page with the project navigation needs."""
    return {"project": project, "nav_current": current,
            "can_manage": can_manage_project(request.user, project),
            "can_coordinate": can_coordinate_project(request.user, project), **extra}


ProjectView = Callable[[HttpRequest, Project], HttpResponse]


def project_page(*, manage: bool = False, coordinate: bool = False) -> Callable[[ProjectView], Any]:
    """A page of one project for signed-in users with the role: 404 for who cannot see it, a 403 page for
    members without the role. The view gets the project instead of its slug."""
    def decorate(view: ProjectView) -> Callable[[HttpRequest, str], HttpResponse]:
        @login_required
        @wraps(view)
        def wrapped(request: HttpRequest, slug: str) -> HttpResponse:
            try:
                project = access_project(request.user, slug, manage=manage, coordinate=coordinate)
            except NotFound as exc:
                raise Http404(exc.message) from exc
            except NotAllowed:
                message = (_("Only the project's managers and the platform's admins may open this page.")
                           if manage else _("Only the project's coordinators, its managers and the platform's "
                                            "admins may open this page."))
                return forbidden(request, message, back=f"/projects/{slug}/", back_label=_("Back to the project"))
            return view(request, project)
        return wrapped
    return decorate


@project_page(coordinate=True)
def dashboard_page(request: HttpRequest, project: Project) -> HttpResponse:
    return render(request, "tagging/dashboard.html", _context(request, project, "dashboard"))


@login_required
def project_new_page(request: HttpRequest) -> HttpResponse:
    if not is_platform_admin(request.user):
        return forbidden(request, _("Only the platform's admins may create projects."))
    defaults = Project()
    return render(request, "tagging/project_form.html", {"is_new": True, "values": defaults,
                                                         "answers": defaults.answers, "locked": False})


@project_page(manage=True)
def project_settings_page(request: HttpRequest, project: Project) -> HttpResponse:
    return render(request, "tagging/project_form.html", _context(
        request, project, "settings", is_new=False, values=project, answers=project.answers,
        locked=answers_locked(project=project)))


@project_page(manage=True)
def upload_page(request: HttpRequest, project: Project) -> HttpResponse:
    return render(request, "tagging/upload.html", _context(request, project, "upload"))


@project_page(manage=True)
def gold_page(request: HttpRequest, project: Project) -> HttpResponse:
    decisive = [a for a in project.answers if not a.get("abstain")]
    return render(request, "tagging/gold.html", _context(request, project, "gold", answers=decisive))


@project_page(manage=True)
def members_page(request: HttpRequest, project: Project) -> HttpResponse:
    return render(request, "tagging/members.html", _context(request, project, "members"))
