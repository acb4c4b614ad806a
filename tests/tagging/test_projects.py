"""Creating projects from the API and the command line."""

import pytest
from django.core.management import CommandError, call_command
from rest_framework.test import APIClient

from tagging.models import Membership, Project

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
