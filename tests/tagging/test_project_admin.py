"""Django's admin keeps the API's slug rules, and a system check finds projects whose slug is reserved."""

from __future__ import annotations

import json

import pytest
from django.core.checks import run_checks
from django.core.management import call_command

from tagging.models import DEFAULT_ANSWERS, Project
from tagging.projects import RESERVED_SLUGS, create_project

pytestmark = pytest.mark.django_db

ADD = "/admin/tagging/project/add/"


def project_form(**fields: str) -> dict[str, str]:
    """What the admin's project page posts: every field, and the empty inline of memberships."""
    return {"name": "Mosul", "slug": "mosul", "instructions": "", "question": "Destroyed buildings?",
            "answers": json.dumps(DEFAULT_ANSWERS), "redundancy": "5", "retire_confidence": "",
            "consensus_settings": "{}", "status": "draft", "scheduling": "breadth_first", "gold_rate": "0.1",
            "is_public": "on", "published_at_0": "", "published_at_1": "", "tile_size": "512", "overlap": "64",
            "created_by": "", "memberships-TOTAL_FORMS": "0", "memberships-INITIAL_FORMS": "0",
            "memberships-MIN_NUM_FORMS": "0", "memberships-MAX_NUM_FORMS": "1000"} | fields


def slug_errors(response) -> list[str]:
    return response.context["adminform"].form.errors.get("slug", [])


@pytest.mark.parametrize("slug", sorted(RESERVED_SLUGS))
def test_the_admin_add_form_refuses_a_reserved_slug_with_the_apis_message(admin_client, slug: str) -> None:
    response = admin_client.post(ADD, project_form(name=slug.title(), slug=slug))
    assert response.status_code == 200
    assert slug_errors(response) == [f"'{slug}' is reserved: /projects/{slug}/ is a page of the site. "
                                     "Choose another slug."]
    assert not Project.objects.filter(slug=slug).exists()


@pytest.mark.parametrize(("slug", "error"), [
    ("mosul-2017", None),
    ("Mosul", "'Mosul' is not a valid slug: use lowercase letters, digits and hyphens."),
    ("map", "'map' is reserved: /projects/map/ is a page of the site. Choose another slug."),
])
def test_the_admin_add_form_takes_the_apis_slugs(admin_client, slug: str, error: str | None) -> None:
    response = admin_client.post(ADD, project_form(slug=slug))
    if error is None:
        assert response.status_code == 302, response.context["adminform"].form.errors
        assert Project.objects.get(slug=slug).answers == DEFAULT_ANSWERS
    else:
        assert response.status_code == 200 and slug_errors(response) == [error]
        assert not Project.objects.filter(slug=slug).exists()


def test_a_project_cannot_be_renamed_to_a_reserved_slug_in_the_admin(admin_client) -> None:
    project = create_project(slug="raqqa", name="Raqqa")
    response = admin_client.post(f"/admin/tagging/project/{project.pk}/change/", project_form(slug="results"))
    assert response.status_code == 200 and slug_errors(response)[0].startswith("'results' is reserved")
    project.refresh_from_db()
    assert project.slug == "raqqa"


def test_a_project_made_with_a_reserved_slug_before_the_rule_is_flagged_and_can_be_renamed(admin_client) -> None:
    legacy = Project.objects.create(slug="map", name="Map")  # as an older version allowed
    page = admin_client.get(f"/admin/tagging/project/{legacy.pk}/change/")
    assert "&#x27;map&#x27; is reserved: /projects/map/ is a page of the site." in page.content.decode()
    kept = admin_client.post(f"/admin/tagging/project/{legacy.pk}/change/", project_form(name="Map 2", slug="map"))
    assert kept.status_code == 302  # editing it does not force a rename; the check keeps reminding
    renamed = admin_client.post(f"/admin/tagging/project/{legacy.pk}/change/", project_form(slug="map-2017"))
    assert renamed.status_code == 302
    legacy.refresh_from_db()
    assert legacy.slug == "map-2017" and legacy.name == "Mosul"


def test_the_system_check_reports_each_project_with_a_reserved_slug() -> None:
    create_project(slug="mosul", name="Mosul")
    assert [w for w in run_checks(databases=["default"]) if w.id == "platform.W002"] == []
    Project.objects.create(slug="results", name="Results")
    Project.objects.create(slug="new", name="New")
    found = [w for w in run_checks(databases=["default"]) if w.id == "platform.W002"]
    assert [(w.obj, w.msg) for w in found] == [
        ("Project 'new'", "'new' is reserved: /projects/new/ is a page of the site. Choose another slug."),
        ("Project 'results'", "'results' is reserved: /projects/results/ is a page of the site. Choose another slug."),
    ]
    assert all(w.hint and "admin" in w.hint for w in found)
    assert [w for w in run_checks() if w.id == "platform.W002"] == []  # a database check: only when asked


def test_manage_py_check_database_prints_the_warning(capsys) -> None:
    Project.objects.create(slug="tiles", name="Tiles")
    call_command("check", "--database", "default")
    err = capsys.readouterr().err
    assert "platform.W002" in err and "'tiles' is reserved" in err
