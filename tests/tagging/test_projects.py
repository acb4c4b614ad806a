"""Creating projects from the API and the command line."""

import re

import pytest
from django.core.management import CommandError, call_command
from django.urls import URLResolver, get_resolver
from rest_framework.test import APIClient

from tagging.models import Membership, Project
from tagging.projects import RESERVED_SLUGS

pytestmark = pytest.mark.django_db


def test_an_admin_creates_a_project_through_the_api(platform_admin) -> None:
    api = APIClient()
    api.force_authenticate(platform_admin)
    response = api.post("/api/v1/projects/", {"slug": "aleppo", "name": "Aleppo 2016", "redundancy": 7,
                                              "answers": [{"key": "destroyed", "damage": True},
                                                          {"key": "intact"}, {"key": "unsure", "abstain": True}]},
                        format="json")
    assert response.status_code == 201, response.json()
    project = Project.objects.get(slug="aleppo")
    assert (project.redundancy, project.status, project.tile_size, project.overlap) == (7, "draft", 512, 64)
    assert project.answer_keys == ["destroyed", "intact", "unsure"]
    assert Membership.objects.get(project=project).role == "manager"
    assert APIClient().get("/api/v1/projects/aleppo/").status_code in (401, 403)


def test_volunteers_cannot_create_projects(volunteer) -> None:
    api = APIClient()
    api.force_authenticate(volunteer)
    response = api.post("/api/v1/projects/", {"slug": "x", "name": "X"}, format="json")
    assert response.status_code == 403
    assert not Project.objects.exists()


BAD_PROJECTS = [
    ({"slug": "Bad Slug", "name": "x"}, "slug"),
    ({"slug": "ok", "name": "x", "tile_size": 10}, "tile_size"),
    ({"slug": "ok", "name": "x", "overlap": 300}, "overlap"),
    ({"slug": "ok", "name": "x", "redundancy": 0}, "redundancy"),
    ({"slug": "ok", "name": "x", "answers": [{"key": "only"}]}, "answers"),
    ({"slug": "ok", "name": "x", "answers": [{"key": "a"}, {"key": "a"}]}, "answers"),
    ({"slug": "ok", "name": "x", "answers": [{"key": "a"}, {"key": "b", "abstain": True}]}, "answers"),
]


@pytest.mark.parametrize(("payload", "field"), BAD_PROJECTS)
def test_bad_project_settings_are_a_400_naming_the_field(admin_user, payload: dict, field: str) -> None:
    api = APIClient()
    api.force_authenticate(admin_user)
    response = api.post("/api/v1/projects/", payload, format="json")
    assert response.status_code == 400, response.json()
    assert field in response.json()["error"]["fields"]
    assert not Project.objects.exists()


def test_a_taken_slug_is_a_409(admin_user) -> None:
    api = APIClient()
    api.force_authenticate(admin_user)
    assert api.post("/api/v1/projects/", {"slug": "a", "name": "A"}, format="json").status_code == 201
    response = api.post("/api/v1/projects/", {"slug": "a", "name": "A"}, format="json")
    assert response.status_code == 409
    assert Project.objects.count() == 1


def routes(patterns: list, prefix: str = "") -> list[str]:
    found = []
    for pattern in patterns:
        route = prefix + str(pattern.pattern)
        found += routes(pattern.url_patterns, route) if isinstance(pattern, URLResolver) else [route]
    return found


def literal_segments_under_projects() -> set[str]:
    """Every fixed path segment after projects/ in the URL configuration that a slug could spell."""
    segments = set()
    for route in routes(get_resolver().url_patterns):
        found = re.search(r"(?:^|/)projects/(.*)", route)
        if found:
            segments |= {s for s in found.group(1).split("/") if s and "<" not in s and re.fullmatch(r"[-\w]+", s)}
    return segments


def test_every_literal_segment_under_projects_is_a_reserved_slug() -> None:
    segments = literal_segments_under_projects()
    assert {"new", "tag", "map", "results", "review"} <= segments  # the walk sees the pages
    assert segments <= RESERVED_SLUGS, sorted(segments - RESERVED_SLUGS)


@pytest.mark.parametrize("slug", sorted(RESERVED_SLUGS))
def test_a_reserved_slug_is_a_400_naming_the_slug(admin_user, slug: str) -> None:
    api = APIClient()
    api.force_authenticate(admin_user)
    response = api.post("/api/v1/projects/", {"slug": slug, "name": "Shadowed"}, format="json")
    assert response.status_code == 400, response.json()
    error = response.json()["error"]
    assert error["fields"] == {"slug": ["reserved"]} and f"'{slug}' is reserved" in error["message"]
    assert not Project.objects.exists()


def test_the_new_project_page_stays_the_form_and_new_cannot_be_taken(client, admin_user) -> None:
    """The form posts to the API, so its answer (and its message, shown by the form) is the 400 above."""
    client.force_login(admin_user)
    assert client.post("/api/v1/projects/", {"slug": "new", "name": "New"},
                       content_type="application/json").status_code == 400
    page = client.get("/projects/new/")
    assert page.status_code == 200 and page.context["is_new"] is True
    with pytest.raises(CommandError, match="reserved"):
        call_command("create_project", "new", "--name", "New")
    assert api_slugs(admin_user) == []


def api_slugs(user) -> list[str]:
    api = APIClient()
    api.force_authenticate(user)
    return [p["slug"] for p in api.get("/api/v1/projects/").json()]


def test_create_project_command(capsys) -> None:
    call_command("create_project", "mosul", "--name", "Mosul", "--answers", "destroyed,no_damage,cant_tell",
                 "--tile-size", "256", "--overlap", "32", "--redundancy", "3")
    project = Project.objects.get(slug="mosul")
    assert project.answer_keys == ["destroyed", "no_damage", "cant_tell"]
    assert [a["abstain"] for a in project.answers] == [False, False, True]
    assert [a["damage"] for a in project.answers] == [True, False, False]
    assert (project.tile_size, project.overlap, project.redundancy) == (256, 32, 3)
    assert "Created project mosul" in capsys.readouterr().out
    with pytest.raises(CommandError, match="exists already"):
        call_command("create_project", "mosul", "--name", "Again")


def test_the_token_endpoint_gives_a_token_that_authenticates(volunteer) -> None:
    response = APIClient().post("/api/v1/auth/token/", {"username": "vol", "password": "vol-pass-123"})
    assert response.status_code == 200
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {response.json()['token']}")
    assert api.get("/api/v1/projects/").status_code == 200
    wrong = APIClient().post("/api/v1/auth/token/", {"username": "vol", "password": "nope"})
    assert wrong.status_code == 400 and "error" in wrong.json()
