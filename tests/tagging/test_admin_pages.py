"""The managers' API (settings, status, members, gold tiles) and the coordinators' and managers' pages."""

import pytest

from imagery.models import Tile
from tagging.models import Classification, GoldAnswer, Membership, Project, TileConsensus
from tagging.projects import create_project
from tests.clients import client_for
from tests.tagging.helpers import project_with_tiles

pytestmark = pytest.mark.django_db


@pytest.fixture
def project() -> Project:
    return project_with_tiles("city", cols=3, rows=2, redundancy=3, is_public=False)


@pytest.fixture
def people(project, django_user_model, admin_user, platform_admin, outsider):
    made = {"anonymous": None, "outsider": outsider, "admin": admin_user, "platform admin": platform_admin}
    for role in ("volunteer", "coordinator", "manager"):
        made[role] = django_user_model.objects.create_user(f"the-{role}", password="pass-123-long")
        Membership.objects.create(project=project, user=made[role], role=role)
    return made


@pytest.fixture
def manager(people):
    return client_for(people["manager"])


def tiles_of(project: Project) -> list[Tile]:
    return list(Tile.objects.filter(grid__project=project).order_by("row", "col"))


def a_vote(project: Project, tile: Tile, user) -> Classification:
    return Classification.objects.create(project=project, tile=tile, volunteer=user, answer="destroyed")


# --- Who may use the managers' API ----------------------------------------------------------------------------

MANAGERS_ONLY = [
    ("get", "/api/v1/projects/city/settings/", None),
    ("patch", "/api/v1/projects/city/settings/", {"question": "Any damage?"}),
    ("post", "/api/v1/projects/city/status/", {"status": "paused"}),
    ("get", "/api/v1/projects/city/members/", None),
    ("post", "/api/v1/projects/city/members/", {"username": "the-volunteer", "role": "coordinator"}),
]
EXPECTED = {"anonymous": (401, 403), "outsider": (404,), "volunteer": (403,), "coordinator": (403,),
            "manager": (200,), "admin": (200,), "platform admin": (200,)}


@pytest.mark.parametrize(("method", "path", "payload"), MANAGERS_ONLY)
@pytest.mark.parametrize("who", list(EXPECTED))
def test_only_managers_and_admins_use_the_managers_api(people, who, method, path, payload) -> None:
    response = getattr(client_for(people[who]), method)(path, payload, format="json")
    assert response.status_code in EXPECTED[who], (who, response.content)


@pytest.mark.parametrize("who", list(EXPECTED))
def test_only_managers_and_admins_mark_gold_tiles(project, people, who) -> None:
    tile = tiles_of(project)[0]
    api = client_for(people[who])
    response = api.put(f"/api/v1/tiles/{tile.pk}/gold/", {"answer": "no_damage"}, format="json")
    assert response.status_code in EXPECTED[who], response.content
    assert GoldAnswer.objects.filter(tile=tile).exists() == (EXPECTED[who] == (200,))


# --- Settings --------------------------------------------------------------------------------------------------

def test_a_manager_edits_the_settings(project, manager) -> None:
    response = manager.patch("/api/v1/projects/city/settings/", {
        "name": "City 2017", "question": "Are buildings destroyed?", "instructions": "Look for collapsed roofs.",
        "redundancy": 4, "retire_confidence": 0.95, "scheduling": "depth_first", "gold_rate": 0.2,
        "is_public": True}, format="json")
    assert response.status_code == 200, response.json()
    project.refresh_from_db()
    assert (project.name, project.question, project.instructions) == (
        "City 2017", "Are buildings destroyed?", "Look for collapsed roofs.")
    assert (project.redundancy, project.retire_confidence, project.scheduling, project.gold_rate,
            project.is_public) == (4, 0.95, "depth_first", 0.2, True)
    assert response.json()["answers_locked"] is False
    assert manager.get("/api/v1/projects/city/settings/").json()["redundancy"] == 4


@pytest.mark.parametrize("sent, field, says", [
    ({"status": "paused"}, "status", "/status/"),
    ({"question": "Any damage?", "redundnacy": 9}, "redundnacy", "the settings are"),
])
def test_a_field_that_is_not_a_setting_is_refused_and_nothing_changes(project, manager, sent, field, says) -> None:
    before = (project.status, project.question, project.redundancy)
    response = manager.patch("/api/v1/projects/city/settings/", sent, format="json")
    assert response.status_code == 400, response.json()
    error = response.json()["error"]
    assert list(error["fields"]) == [field] and says in error["fields"][field][0] and field in error["message"]
    project.refresh_from_db()
    assert (project.status, project.question, project.redundancy) == before


def test_answers_can_change_freely_before_the_first_vote(project, manager) -> None:
    answers = [{"key": "destroyed", "label": "Destroyed", "damage": True}, {"key": "intact", "label": "Intact"}]
    response = manager.patch("/api/v1/projects/city/settings/", {"answers": answers}, format="json")
    assert response.status_code == 200, response.json()
    project.refresh_from_db()
    assert project.answer_keys == ["destroyed", "intact"]


@pytest.mark.parametrize("change", ["rename", "add", "remove", "reorder", "meaning"])
def test_answer_keys_in_use_cannot_change_a_409(project, manager, people, change: str) -> None:
    a_vote(project, tiles_of(project)[0], people["volunteer"])
    answers = [dict(a) for a in project.answers]
    if change == "rename":
        answers[0]["key"] = "ruined"
    elif change == "add":
        answers.append({"key": "burnt", "label": "Burnt", "damage": True})
    elif change == "remove":
        answers.pop(1)
    elif change == "reorder":
        answers[0], answers[1] = answers[1], answers[0]
    else:
        answers[1]["damage"] = False
    response = manager.patch("/api/v1/projects/city/settings/", {"answers": answers}, format="json")
    assert response.status_code == 409, response.json()
    error = response.json()["error"]
    assert error["code"] == "answers_in_use" and "answers" in error["fields"]
    assert "labels can" in error["message"]
    project.refresh_from_db()
    assert project.answer_keys == ["destroyed", "damaged", "no_damage", "cant_tell"]


def test_labels_can_change_after_votes(project, manager, people) -> None:
    a_vote(project, tiles_of(project)[0], people["volunteer"])
    answers = [dict(a) for a in project.answers]
    answers[0]["label"] = "Collapsed"
    response = manager.patch("/api/v1/projects/city/settings/", {"answers": answers}, format="json")
    assert response.status_code == 200, response.json()
    assert response.json()["answers_locked"] is True
    project.refresh_from_db()
    assert project.answers[0] == {"key": "destroyed", "label": "Collapsed", "damage": True, "abstain": False}


BAD_SETTINGS = [
    ({"redundancy": 0}, "redundancy"),
    ({"redundancy": 101}, "redundancy"),
    ({"retire_confidence": 0.2}, "retire_confidence"),
    ({"gold_rate": 1.5}, "gold_rate"),
    ({"scheduling": "random"}, "scheduling"),
    ({"name": "  "}, "name"),
    ({"answers": [{"key": "only"}]}, "answers"),
    ({"answers": [{"key": "Bad Key"}, {"key": "b"}]}, "answers"),
]


@pytest.mark.parametrize(("payload", "field"), BAD_SETTINGS)
def test_bad_settings_are_a_400_naming_the_field(project, manager, payload, field) -> None:
    response = manager.patch("/api/v1/projects/city/settings/", payload, format="json")
    assert response.status_code == 400, response.json()
    assert field in response.json()["error"]["fields"]
    project.refresh_from_db()
    assert (project.redundancy, project.gold_rate, project.name) == (3, 0.1, "City")


def test_a_new_redundancy_retires_and_reopens_tiles(project, manager) -> None:
    tiles = tiles_of(project)
    Tile.objects.filter(pk=tiles[0].pk).update(vote_count=2)                    # open, 2 votes
    Tile.objects.filter(pk=tiles[1].pk).update(vote_count=3, status="retired")  # retired at 3
    manager.patch("/api/v1/projects/city/settings/", {"redundancy": 2}, format="json")
    assert Tile.objects.get(pk=tiles[0].pk).status == "retired"
    manager.patch("/api/v1/projects/city/settings/", {"redundancy": 5}, format="json")
    assert {Tile.objects.get(pk=t.pk).status for t in tiles[:2]} == {"open"}


def test_a_higher_redundancy_leaves_tiles_the_consensus_retired_early(project, manager) -> None:
    tiles = tiles_of(project)
    Project.objects.filter(pk=project.pk).update(retire_confidence=0.95)
    Tile.objects.filter(pk__in=[tiles[0].pk, tiles[1].pk]).update(vote_count=2, status="retired")
    TileConsensus.objects.create(tile=tiles[0], project=project, label="destroyed", confidence=0.97, method="test")
    TileConsensus.objects.create(tile=tiles[1], project=project, label="destroyed", confidence=0.6, method="test")
    manager.patch("/api/v1/projects/city/settings/", {"redundancy": 5}, format="json")
    assert [Tile.objects.get(pk=t.pk).status for t in tiles[:2]] == ["retired", "open"]


def test_the_retire_confidence_can_be_emptied(project, manager) -> None:
    Project.objects.filter(pk=project.pk).update(retire_confidence=0.9)
    response = manager.patch("/api/v1/projects/city/settings/", {"retire_confidence": None}, format="json")
    assert response.status_code == 200
    project.refresh_from_db()
    assert project.retire_confidence is None


# --- Status ----------------------------------------------------------------------------------------------------

TRANSITIONS = [
    ("draft", "active", 200), ("active", "paused", 200), ("paused", "active", 200), ("active", "finished", 200),
    ("paused", "finished", 200), ("finished", "active", 200), ("finished", "paused", 200), ("active", "active", 200),
    ("active", "draft", 200), ("draft", "paused", 409), ("draft", "finished", 409), ("finished", "draft", 409),
    ("active", "closed", 400),
]


@pytest.mark.parametrize(("before", "after", "code"), TRANSITIONS)
def test_status_transitions(project, manager, before, after, code) -> None:
    Project.objects.filter(pk=project.pk).update(status=before)
    response = manager.post("/api/v1/projects/city/status/", {"status": after}, format="json")
    assert response.status_code == code, response.json()
    project.refresh_from_db()
    assert project.status == (after if code == 200 else before)
    if code == 200:
        assert response.json()["status"] == after and isinstance(response.json()["allowed"], list)


def test_a_project_without_tiles_cannot_open(admin_user) -> None:
    create_project(slug="empty", name="Empty", user=admin_user)
    response = client_for(admin_user).post("/api/v1/projects/empty/status/", {"status": "active"}, format="json")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "no_tiles"


def test_a_project_with_votes_cannot_go_back_to_draft(project, manager, people) -> None:
    a_vote(project, tiles_of(project)[0], people["volunteer"])
    response = manager.post("/api/v1/projects/city/status/", {"status": "draft"}, format="json")
    assert response.status_code == 409 and response.json()["error"]["code"] == "has_votes"


# --- Members ---------------------------------------------------------------------------------------------------

def test_members_are_listed_managers_first(people, manager) -> None:
    body = manager.get("/api/v1/projects/city/members/").json()
    assert body["count"] == 3
    assert [(m["username"], m["role"]) for m in body["results"]] == [
        ("the-manager", "manager"), ("the-coordinator", "coordinator"), ("the-volunteer", "volunteer")]
    only = manager.get("/api/v1/projects/city/members/", {"role": "coordinator"}).json()["results"]
    assert [m["username"] for m in only] == ["the-coordinator"]
    assert [m["username"] for m in manager.get("/api/v1/projects/city/members/", {"q": "volun"}).json()["results"]] == [
        "the-volunteer"]
    assert manager.get("/api/v1/projects/city/members/", {"role": "boss"}).status_code == 400


def test_a_manager_makes_a_volunteer_coordinator_and_adds_a_newcomer(project, people, manager) -> None:
    response = manager.post("/api/v1/projects/city/members/", {"username": "the-volunteer", "role": "coordinator"},
                            format="json")
    assert response.status_code == 200 and response.json()["role"] == "coordinator"
    response = manager.post("/api/v1/projects/city/members/", {"username": "outsider", "role": "coordinator"},
                            format="json")
    assert response.status_code == 201
    assert Membership.objects.get(project=project, user=people["outsider"]).role == "coordinator"
    # The new coordinator now sees the dashboard of the private project.
    assert client_for(people["outsider"]).get("/api/v1/projects/city/dashboard/").status_code == 200


def test_bad_member_requests(people, manager) -> None:
    unknown = manager.post("/api/v1/projects/city/members/", {"username": "nobody", "role": "coordinator"},
                           format="json")
    assert unknown.status_code == 404 and "nobody" in unknown.json()["error"]["message"]
    bad_role = manager.post("/api/v1/projects/city/members/", {"username": "the-volunteer", "role": "king"},
                            format="json")
    assert bad_role.status_code == 400
    assert manager.delete("/api/v1/projects/city/members/?username=outsider").status_code == 404
    assert manager.delete("/api/v1/projects/city/members/").status_code == 400


def test_a_member_is_removed_by_query_or_body(project, people, manager) -> None:
    assert manager.delete("/api/v1/projects/city/members/?username=the-volunteer").status_code == 204
    assert manager.delete("/api/v1/projects/city/members/", {"username": "the-coordinator"},
                          format="json").status_code == 204
    assert list(Membership.objects.filter(project=project).values_list("user__username", flat=True)) == [
        "the-manager"]


def test_the_last_manager_stays(project, people, manager, admin_user) -> None:
    demote = manager.post("/api/v1/projects/city/members/", {"username": "the-manager", "role": "volunteer"},
                          format="json")
    assert demote.status_code == 409 and demote.json()["error"]["code"] == "last_manager"
    assert manager.delete("/api/v1/projects/city/members/?username=the-manager").status_code == 409
    # With a second manager, the first may step down.
    admin = client_for(admin_user)
    assert admin.post("/api/v1/projects/city/members/", {"username": "the-coordinator", "role": "manager"},
                      format="json").status_code == 200
    assert manager.post("/api/v1/projects/city/members/", {"username": "the-manager", "role": "volunteer"},
                        format="json").status_code == 200


# --- Gold tiles ------------------------------------------------------------------------------------------------

def test_a_manager_marks_a_gold_tile_and_undoes_it(project, people, manager) -> None:
    tile = tiles_of(project)[0]
    earlier = a_vote(project, tile, people["volunteer"])
    response = manager.put(f"/api/v1/tiles/{tile.pk}/gold/", {"answer": "destroyed", "marks": [[10, 20], [100.5, 200]]},
                           format="json")
    assert response.status_code == 200, response.json()
    assert response.json() == {"tile": tile.pk, "status": "gold", "answer": "destroyed",
                               "marks": [[10.0, 20.0], [100.5, 200.0]]}
    assert Tile.objects.get(pk=tile.pk).status == "gold"
    assert GoldAnswer.objects.get(tile=tile).marks == [[10.0, 20.0], [100.5, 200.0]]
    assert Classification.objects.get(pk=earlier.pk).is_gold
    assert manager.get(f"/api/v1/tiles/{tile.pk}/gold/").json()["answer"] == "destroyed"

    response = manager.delete(f"/api/v1/tiles/{tile.pk}/gold/")
    assert response.status_code == 200 and response.json()["status"] == "open"
    assert not GoldAnswer.objects.filter(tile=tile).exists()
    assert Tile.objects.get(pk=tile.pk).status == "open"
    assert not Classification.objects.get(pk=earlier.pk).is_gold
    assert manager.delete(f"/api/v1/tiles/{tile.pk}/gold/").status_code == 404
    assert manager.get(f"/api/v1/tiles/{tile.pk}/gold/").json() == {"tile": tile.pk, "status": "open",
                                                                   "answer": None, "marks": []}


def test_a_tile_with_all_its_votes_retires_when_it_stops_being_gold(project, manager) -> None:
    tile = tiles_of(project)[1]
    manager.put(f"/api/v1/tiles/{tile.pk}/gold/", {"answer": "no_damage"}, format="json")
    Tile.objects.filter(pk=tile.pk).update(vote_count=3)
    assert manager.delete(f"/api/v1/tiles/{tile.pk}/gold/").json()["status"] == "retired"


def test_changing_a_gold_answer_stores_a_new_one(project, manager) -> None:
    tile = tiles_of(project)[0]
    manager.put(f"/api/v1/tiles/{tile.pk}/gold/", {"answer": "no_damage"}, format="json")
    first = GoldAnswer.objects.get(tile=tile)
    manager.put(f"/api/v1/tiles/{tile.pk}/gold/", {"answer": "no_damage"}, format="json")
    assert GoldAnswer.objects.get(tile=tile).pk == first.pk  # the same answer again changes nothing
    manager.put(f"/api/v1/tiles/{tile.pk}/gold/", {"answer": "destroyed", "marks": [[5, 5]]}, format="json")
    second = GoldAnswer.objects.get(tile=tile)
    assert (second.answer, second.marks) == ("destroyed", [[5.0, 5.0]])
    assert second.created_at >= first.created_at  # the periodic recompute sees gold that changed


BAD_GOLD = [
    ({"answer": "rubble"}, "answer"),
    ({"answer": "cant_tell"}, "answer"),
    ({"answer": "no_damage", "marks": [[10, 10]]}, "marks"),
    ({"answer": "destroyed", "marks": [[10, 600]]}, "marks"),
    ({"answer": "destroyed", "marks": [[-1, 10]]}, "marks"),
    ({"answer": "destroyed", "marks": [[10]]}, "marks"),
    ({"answer": "destroyed", "marks": "here"}, "marks"),
    ({}, "answer"),
]


@pytest.mark.parametrize(("payload", "field"), BAD_GOLD)
def test_gold_answers_are_validated_like_votes(project, manager, payload, field) -> None:
    tile = tiles_of(project)[0]
    response = manager.put(f"/api/v1/tiles/{tile.pk}/gold/", payload, format="json")
    assert response.status_code == 400, response.json()
    assert field in response.json()["error"]["fields"], response.json()
    assert Tile.objects.get(pk=tile.pk).status == "open" and not GoldAnswer.objects.exists()


def test_gold_on_an_unknown_tile_is_a_404(manager) -> None:
    assert manager.put("/api/v1/tiles/999999/gold/", {"answer": "no_damage"}, format="json").status_code == 404


# --- Pages -----------------------------------------------------------------------------------------------------

PAGES = ["dashboard", "settings", "upload", "gold", "members"]
PAGE_CODES = {
    "outsider": dict.fromkeys(PAGES, 404),
    "volunteer": dict.fromkeys(PAGES, 403),
    "coordinator": {"dashboard": 200, "settings": 403, "upload": 403, "gold": 403, "members": 403},
    "manager": dict.fromkeys(PAGES, 200),
    "admin": dict.fromkeys(PAGES, 200),
    "platform admin": dict.fromkeys(PAGES, 200),
}


@pytest.mark.parametrize("who", list(PAGE_CODES))
def test_pages_open_for_the_right_roles(client, people, who) -> None:
    client.force_login(people[who])
    for page in PAGES:
        response = client.get(f"/projects/city/{page}/")
        assert response.status_code == PAGE_CODES[who][page], (who, page)
        if response.status_code == 403:
            assert "You may not open this page" in response.content.decode()  # the site's own 403 page


def test_pages_ask_anonymous_visitors_to_sign_in(client, project) -> None:
    for page in [*PAGES, "new"]:
        path = f"/projects/city/{page}/" if page != "new" else "/projects/new/"
        response = client.get(path)
        assert response.status_code == 302 and "/accounts/login/" in response["Location"], page


def test_the_navigation_shows_each_role_its_pages(client, people) -> None:
    client.force_login(people["coordinator"])
    page = client.get("/projects/city/dashboard/").content.decode()
    for link in ("tag", "dashboard", "map", "review"):
        assert f'href="/projects/city/{link}/"' in page, link
    for link in ("settings", "upload", "gold", "members"):
        assert f'href="/projects/city/{link}/"' not in page, link
    assert 'aria-current="page">Dashboard' in page
    client.force_login(people["manager"])
    page = client.get("/projects/city/members/").content.decode()
    for link in ("tag", "dashboard", "map", "review", "settings", "upload", "gold", "members"):
        assert f'href="/projects/city/{link}/"' in page, link


def test_only_admins_open_the_new_project_page(client, people) -> None:
    client.force_login(people["manager"])
    assert client.get("/projects/new/").status_code == 403
    assert 'href="/projects/new/"' not in client.get("/").content.decode()
    for who in ("admin", "platform admin"):
        client.force_login(people[who])
        assert client.get("/projects/new/").status_code == 200
        assert 'href="/projects/new/"' in client.get("/").content.decode()


def test_the_settings_page_locks_the_answers_once_voted(client, project, people) -> None:
    client.force_login(people["manager"])
    assert 'data-locked="0"' in client.get("/projects/city/settings/").content.decode()
    a_vote(project, tiles_of(project)[0], people["volunteer"])
    page = client.get("/projects/city/settings/").content.decode()
    assert 'data-locked="1"' in page and 'id="answers-locked"' in page


def test_the_gold_page_offers_only_decisive_answers(client, people) -> None:
    client.force_login(people["manager"])
    page = client.get("/projects/city/gold/").content.decode()
    assert '"key": "destroyed"' in page and '"key": "cant_tell"' not in page
