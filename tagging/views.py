"""Pages. They read through the same JSON API as any client; the views only pick the template.

The exceptions are the few forms that are not worth a script: joining by invitation and
deleting one's account, which post to the page itself.
"""

from django.contrib import messages
from django.contrib.auth import authenticate, logout
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _

from config.errors import PlatformError
from tagging.access import access_project, can_manage_project
from tagging.accounts import delete_account
from tagging.api import visible_projects
from tagging.models import Membership, Project
from tagging.results import results_visible, results_visible_among
from tagging.volunteers import accept_invitation, find_invitation, join_project


def home(request: HttpRequest) -> HttpResponse:
    projects = list(visible_projects(request.user)) if request.user.is_authenticated else []
    return render(request, "tagging/home.html", {"projects": projects,
                                                 "with_results": results_visible_among(request.user, projects)})


def _project(request: HttpRequest, slug: str) -> Project:
    try:
        return access_project(request.user, slug)
    except PlatformError as exc:
        raise Http404(exc.message) from exc


@login_required
def project_page(request: HttpRequest, slug: str) -> HttpResponse:
    project = _project(request, slug)
    return render(request, "tagging/project.html",
                  {"project": project, "can_manage": can_manage_project(request.user, project)})


@login_required
def tag_page(request: HttpRequest, slug: str) -> HttpResponse:
    """The tagging page; the tutorial first until the volunteer has done it (or asks for it again)."""
    project = _project(request, slug)
    membership = join_project(volunteer=request.user, project=project)
    dates = [str(d) for d in project.layers.filter(status="ready").order_by("date").values_list("date", flat=True)]
    return render(request, "tagging/tag.html", {
        "project": project, "dates": dates,
        "tutorial": membership.tutorial_done_at is None or "tutorial" in request.GET,
        "open": project.status == Project.Status.ACTIVE, "results": results_visible(request.user, project)})


@login_required
def progress_page(request: HttpRequest, slug: str) -> HttpResponse:
    project = _project(request, slug)
    return render(request, "tagging/progress.html",
                  {"project": project, "results": results_visible(request.user, project)})


def invitation_page(request: HttpRequest, token: str) -> HttpResponse:
    """Shows which project the link is for; signed in, a button joins it."""
    try:
        invitation = find_invitation(token=token)
    except PlatformError as exc:
        raise Http404(exc.message) from exc
    if request.method == "POST" and request.user.is_authenticated:
        try:
            membership = accept_invitation(token=token, volunteer=request.user)
        except PlatformError as exc:
            messages.error(request, exc.message)
        else:
            messages.success(request, _("You have joined %(project)s.") % {"project": membership.project.name})
            return redirect("tag-page", slug=membership.project.slug)
    joined = request.user.is_authenticated and Membership.objects.filter(
        project=invitation.project, user=request.user).exists()
    return render(request, "tagging/invitation.html", {"invitation": invitation, "joined": joined})


@login_required
def account_page(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        if authenticate(request, username=request.user.username, password=request.POST.get("password", "")) is None:
            messages.error(request, _("That is not your password; your account was not deleted."))
        else:
            delete_account(user=request.user)
            logout(request)
            messages.success(request, _("Your account is deleted. Your classifications stay, anonymised. Thank you."))
            return redirect("home")
    return render(request, "tagging/account.html", {"memberships": request.user.memberships.select_related("project")})
