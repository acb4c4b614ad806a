"""PostgreSQL: next-tile for a volunteer on an active project open to them is one statement (tagging.assignment.
next_tile_in_project: the project by its slug and the claim), and every other case goes the long way, which words
the error, or lets an admin in, as before."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tagging.assignment import next_tile_in_project
from tagging.models import Assignment, Membership, Project
from tests.clients import client_for
from tests.tagging.helpers import project_with_tiles

pytestmark = [pytest.mark.django_db,
              pytest.mark.skipif(connection.vendor != "postgresql", reason="the one-statement claim (PostgreSQL)")]

NEXT = "/api/v1/projects/{}/tasks/next/"


def test_a_public_projects_next_tile_is_one_statement_with_everything_the_page_needs(volunteer) -> None:
    project = project_with_tiles(dates=("2017-06-01", "2018-02-01"))
    api = client_for(volunteer)
    with CaptureQueriesContext(connection) as queries:
        response = api.post(NEXT.format("raqqa"), {"exclude": []}, format="json")
    assert response.status_code == 200
    assert len(queries) == 1
    task = response.json()
    lease = Assignment.objects.get(volunteer=volunteer)
    assert (task["lease"]["id"], task["tile"]["id"]) == (lease.pk, lease.tile_id)
    assert [image["date"] for image in task["tile"]["images"]] == ["2017-06-01", "2018-02-01"]
    assert task["question"] == project.question
    assert [answer["key"] for answer in task["answers"]] == [answer["key"] for answer in project.answers]
    # The next one excludes the tile on screen, in one statement too.
    with CaptureQueriesContext(connection) as queries:
        second = api.post(NEXT.format("raqqa"), {"exclude": [lease.tile_id]}, format="json")
    assert len(queries) == 1 and second.json()["tile"]["id"] != lease.tile_id


def test_a_member_of_a_private_project_gets_a_tile_in_one_statement_and_others_are_told_it_is_not_there(
        volunteer, django_user_model) -> None:
    project = project_with_tiles(is_public=False)
    Membership.objects.create(project=project, user=volunteer)
    with CaptureQueriesContext(connection) as queries:
        assert client_for(volunteer).post(NEXT.format("raqqa")).status_code == 200
    assert len(queries) == 1
    stranger = django_user_model.objects.create_user("stranger")
    refused = client_for(stranger).post(NEXT.format("raqqa"))
    assert refused.status_code == 404
    assert refused.json()["error"]["message"] == "There is no project 'raqqa' that you can see."
    assert next_tile_in_project(volunteer=stranger, slug="raqqa") is None
    assert not Assignment.objects.filter(volunteer=stranger).exists()


def test_an_admin_outside_a_private_project_gets_a_tile_the_long_way(admin_user) -> None:
    project_with_tiles(is_public=False)
    assert next_tile_in_project(volunteer=admin_user, slug="raqqa") is None  # not a member: the long way
    response = client_for(admin_user).post(NEXT.format("raqqa"))
    assert response.status_code == 200
    assert Assignment.objects.filter(volunteer=admin_user).count() == 1


@pytest.mark.parametrize("status", [Project.Status.PAUSED, Project.Status.DRAFT, Project.Status.FINISHED])
def test_a_project_not_open_for_tagging_is_a_worded_conflict_and_claims_nothing(volunteer, status) -> None:
    project_with_tiles()
    Project.objects.filter(slug="raqqa").update(status=status)
    assert next_tile_in_project(volunteer=volunteer, slug="raqqa") is None
    response = client_for(volunteer).post(NEXT.format("raqqa"))
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "project_not_open"
    assert not Assignment.objects.filter(volunteer=volunteer).exists()


def test_no_such_project_is_not_found_whatever_the_body(volunteer) -> None:
    project_with_tiles()
    api = client_for(volunteer)
    for body in ({}, {"exclude": list(range(11))}):
        response = api.post(NEXT.format("homs"), body, format="json")
        assert response.status_code == 404, body
    broken = api.post(NEXT.format("homs"), "{not json", content_type="application/json")
    assert broken.status_code == 404
    # On a project they see, the same bodies are the input errors they are.
    assert api.post(NEXT.format("raqqa"), {"exclude": list(range(11))}, format="json").status_code == 400
    assert api.post(NEXT.format("raqqa"), "{not json", content_type="application/json").status_code == 400
