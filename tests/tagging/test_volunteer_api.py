"""The volunteers' API beyond votes: prefetching, skips, reports, the tutorial, progress, invitations, leaving."""

from datetime import timedelta

import pytest
from allauth.account.models import EmailAddress
from django.contrib.auth import get_user_model
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from imagery.models import Tile
from tagging.classifications import record_classification
from tagging.models import Assignment, Classification, GoldAnswer, Invitation, Membership, Project, TileReport
from tests.tagging.helpers import project_with_tiles

pytestmark = pytest.mark.django_db


def client(user) -> APIClient:
    api = APIClient()
    api.force_authenticate(user)
    return api


def make_gold(project: Project, count: int) -> list[Tile]:
    tiles = list(Tile.objects.filter(grid__project=project).order_by("pk")[:count])
    for i, tile in enumerate(tiles):
        GoldAnswer.objects.create(tile=tile, answer="destroyed" if i % 2 == 0 else "no_damage",
                                  marks=[[100, 100], [300, 200]] if i % 2 == 0 else [])
        Tile.objects.filter(pk=tile.pk).update(status=Tile.Status.GOLD)
    return tiles


def test_prefetching_excludes_the_tile_on_screen_and_holds_one_lease_ahead(volunteer) -> None:
    project_with_tiles(cols=3, rows=2, gold_rate=0.0)
    api = client(volunteer)
    first = api.post("/api/v1/projects/raqqa/tasks/next/").json()["tile"]["id"]
    ahead = api.post("/api/v1/projects/raqqa/tasks/next/", {"exclude": [first]}, format="json").json()["tile"]["id"]
    assert ahead != first
    # Asking again (a reload, a retry) does not hand out a third tile: the held ones come back.
    assert api.post("/api/v1/projects/raqqa/tasks/next/", {"exclude": [first]}, format="json").json()["tile"][
        "id"] == ahead
    assert api.post("/api/v1/projects/raqqa/tasks/next/").json()["tile"]["id"] == first
    assert Assignment.objects.filter(volunteer=volunteer).count() == 2


def test_exclude_must_be_a_list_of_tile_ids(volunteer) -> None:
    project_with_tiles()
    response = client(volunteer).post("/api/v1/projects/raqqa/tasks/next/", {"exclude": ["x"]}, format="json")
    assert response.status_code == 400
    assert "exclude" in response.json()["error"]["fields"]


def test_a_skipped_tile_goes_back_to_the_pool_but_never_to_the_same_volunteer(volunteer, outsider) -> None:
    project = project_with_tiles(cols=1, rows=1, redundancy=1, gold_rate=0.0)
    api = client(volunteer)
    tile = api.post("/api/v1/projects/raqqa/tasks/next/").json()["tile"]["id"]
    # Leased to the volunteer with redundancy 1: nobody else gets it.
    assert client(outsider).post("/api/v1/projects/raqqa/tasks/next/").status_code == 204
    assert api.post(f"/api/v1/tiles/{tile}/skip/").json() == {"released": True}
    assert api.post("/api/v1/projects/raqqa/tasks/next/").status_code == 204
    assert client(outsider).post("/api/v1/projects/raqqa/tasks/next/").json()["tile"]["id"] == tile
    assert not Classification.objects.filter(project=project).exists()


def test_a_bad_image_report_is_stored_once_and_skips_the_tile(volunteer) -> None:
    project_with_tiles(cols=1, rows=1, gold_rate=0.0)
    api = client(volunteer)
    tile = api.post("/api/v1/projects/raqqa/tasks/next/").json()["tile"]["id"]
    first = api.post(f"/api/v1/tiles/{tile}/reports/", {"reason": "clouds", "note": "all white"}, format="json")
    again = api.post(f"/api/v1/tiles/{tile}/reports/", {"reason": "clouds"}, format="json")
    assert (first.status_code, again.status_code) == (201, 200)
    assert TileReport.objects.get().note == "all white"
    assert api.post("/api/v1/projects/raqqa/tasks/next/").status_code == 204
    bad = api.post(f"/api/v1/tiles/{tile}/reports/", {"reason": "ugly"}, format="json")
    assert bad.status_code == 400 and "reason" in bad.json()["error"]["fields"]


def test_the_tutorial_gives_practice_tiles_and_feedback_without_storing_a_vote(volunteer) -> None:
    project = project_with_tiles(cols=3, rows=2)
    gold = make_gold(project, 5)
    api = client(volunteer)
    tutorial = api.get("/api/v1/projects/raqqa/tutorial/").json()
    assert tutorial["done"] is False
    practice = [t["id"] for t in tutorial["practice"]]
    assert len(practice) == 3 and set(practice) <= {t.pk for t in gold}
    assert "answer" not in str(tutorial["practice"])  # the practice answers are not given away
    assert all(e["marks"] and e["id"] not in practice for e in tutorial["examples"])
    with_marks = next(t for t in gold if t.gold.marks)
    feedback = api.post(f"/api/v1/projects/raqqa/tutorial/practice/{with_marks.pk}/",
                        {"answer": "destroyed", "marks": [{"x": 105, "y": 98}, {"x": 400, "y": 400}]},
                        format="json").json()
    assert feedback == {"correct": True, "answer": "destroyed", "found": [[100.0, 100.0]],
                        "missed": [[300.0, 200.0]], "wrong_marks": [[400.0, 400.0]]}
    assert not Classification.objects.exists()
    assert api.post("/api/v1/projects/raqqa/tutorial/done/").json()["done"] is True
    assert api.get("/api/v1/projects/raqqa/tutorial/").json()["done"] is True
    # Tiles whose answers the tutorial showed are never served to this volunteer.
    shown = set(practice) | {e["id"] for e in tutorial["examples"]}
    served = set()
    while (response := api.post("/api/v1/projects/raqqa/tasks/next/")).status_code == 200:
        tile = response.json()["tile"]["id"]
        served.add(tile)
        record_classification(volunteer=volunteer, tile=Tile.objects.get(pk=tile), answer="no_damage", marks=[])
    assert served and not served & shown


def test_a_project_whose_gold_tiles_show_no_damage_still_gives_a_full_practice(volunteer) -> None:
    project = project_with_tiles(cols=3, rows=2)
    tiles = list(Tile.objects.filter(grid__project=project).order_by("pk")[:4])
    for tile in tiles:
        GoldAnswer.objects.create(tile=tile, answer="no_damage", marks=[])
    practice = [t["id"] for t in client(volunteer).get("/api/v1/projects/raqqa/tutorial/").json()["practice"]]
    assert len(practice) == 3 and set(practice) <= {t.pk for t in tiles}


def test_practice_answers_are_validated_like_votes(volunteer) -> None:
    project = project_with_tiles()
    tile = make_gold(project, 1)[0]
    api = client(volunteer)
    outside = api.post(f"/api/v1/projects/raqqa/tutorial/practice/{tile.pk}/",
                       {"answer": "destroyed", "marks": [{"x": 9000, "y": 1}]}, format="json")
    assert outside.status_code == 400 and "outside the tile" in outside.json()["error"]["message"]
    other = Tile.objects.exclude(pk=tile.pk).first()
    assert api.post(f"/api/v1/projects/raqqa/tutorial/practice/{other.pk}/", {"answer": "no_damage"},
                    format="json").status_code == 404


def test_only_the_tutorials_own_tiles_give_feedback(volunteer, settings) -> None:
    # Feedback on any gold tile would let a volunteer find out which tiles are gold.
    settings.TUTORIAL_PRACTICE_TILES = 1
    project = project_with_tiles(cols=3, rows=2)
    gold = make_gold(project, 3)
    practice = [t["id"] for t in client(volunteer).get("/api/v1/projects/raqqa/tutorial/").json()["practice"]]
    assert len(practice) == 1
    for tile in gold:
        code = client(volunteer).post(f"/api/v1/projects/raqqa/tutorial/practice/{tile.pk}/", {"answer": "no_damage"},
                                      format="json").status_code
        assert code == (200 if tile.pk in practice else 404)


def test_how_am_i_doing_counts_agreement_and_gold_without_showing_others_answers(volunteer, django_user_model) -> None:
    project = project_with_tiles(cols=3, rows=1, redundancy=5, gold_rate=0.0)
    tiles = list(Tile.objects.filter(grid__project=project).order_by("pk"))
    others = [django_user_model.objects.create_user(f"o{i}") for i in range(3)]
    for tile, crowd in zip(tiles[:2], ("destroyed", "no_damage")):
        for other in others:
            record_classification(volunteer=other, tile=tile, answer=crowd, marks=[], seconds=10)
    record_classification(volunteer=volunteer, tile=tiles[0], answer="destroyed", marks=[], seconds=10)
    record_classification(volunteer=volunteer, tile=tiles[1], answer="destroyed", marks=[], seconds=10)
    gold = tiles[2]
    GoldAnswer.objects.create(tile=gold, answer="no_damage")
    Tile.objects.filter(pk=gold.pk).update(status=Tile.Status.GOLD)
    Assignment.objects.create(tile=gold, volunteer=volunteer, project=project, is_gold=True,
                              expires_at=timezone.now() + timedelta(minutes=5))
    record_classification(volunteer=volunteer, tile=Tile.objects.get(pk=gold.pk), answer="no_damage", marks=[],
                          seconds=0.5)
    me = client(volunteer).get("/api/v1/projects/raqqa/me/").json()
    assert (me["tiles_total"], me["tiles_today"], me["too_fast"]) == (3, 3, 1)
    assert me["agreement"] == {"tiles_compared": 2, "rate": 0.5}
    assert me["gold"] == {"tiles": 1, "correct": 1, "rate": 1.0}
    assert me["project"]["tiles"] == 3 and me["project"]["votes_needed"] == 15
    assert "o0" not in str(me)


def test_private_projects_open_to_invited_volunteers_only(volunteer, outsider, platform_admin) -> None:
    project_with_tiles(is_public=False)
    assert client(volunteer).post("/api/v1/projects/raqqa/tasks/next/").status_code == 404
    made = client(platform_admin).post("/api/v1/projects/raqqa/invitations/", {"note": "for vol"}, format="json")
    assert made.status_code == 201 and made.json()["url"].endswith(f"/invite/{made.json()['token']}/")
    token = made.json()["token"]
    assert client(volunteer).post(f"/api/v1/invitations/{token}/accept/").json() == {
        "project": "raqqa", "role": "volunteer"}
    assert client(volunteer).post("/api/v1/projects/raqqa/tasks/next/").status_code == 200
    # A link works once.
    used = client(outsider).post(f"/api/v1/invitations/{token}/accept/")
    assert used.status_code == 409 and "already been used" in used.json()["error"]["message"]
    assert client(outsider).post("/api/v1/invitations/nope/accept/").status_code == 404
    # Members cannot invite; coordinators invite volunteers only.
    assert client(volunteer).post("/api/v1/projects/raqqa/invitations/", {}, format="json").status_code == 403
    Membership.objects.filter(user=volunteer).update(role=Membership.Role.COORDINATOR)
    api = client(volunteer)
    assert api.post("/api/v1/projects/raqqa/invitations/", {}, format="json").status_code == 201
    assert api.post("/api/v1/projects/raqqa/invitations/", {"role": "manager"}, format="json").status_code == 403


def test_an_expired_invitation_is_refused(volunteer, platform_admin) -> None:
    project_with_tiles(is_public=False)
    token = client(platform_admin).post("/api/v1/projects/raqqa/invitations/", {}, format="json").json()["token"]
    Invitation.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    response = client(volunteer).post(f"/api/v1/invitations/{token}/accept/")
    assert response.status_code == 409 and "expired" in response.json()["error"]["message"]
    assert not Membership.objects.filter(user=volunteer).exists()


def test_deleting_an_account_keeps_the_votes_anonymised(volunteer) -> None:
    project = project_with_tiles(cols=2, rows=1, gold_rate=0.0)
    volunteer.email = "vol@example.org"
    volunteer.save()
    EmailAddress.objects.create(user=volunteer, email=volunteer.email, primary=True)
    Token.objects.create(user=volunteer)
    tile = Tile.objects.filter(grid__project=project).first()
    record_classification(volunteer=volunteer, tile=tile, answer="no_damage", marks=[], seconds=10)
    api = client(volunteer)
    assert api.get("/api/v1/me/").json()["email"] == "vol@example.org"
    wrong = api.delete("/api/v1/me/", {"password": "guess"}, format="json")
    assert wrong.status_code == 400 and get_user_model().objects.get(pk=volunteer.pk).username == "vol"
    assert api.delete("/api/v1/me/", {"password": "vol-pass-123"}, format="json").status_code == 204
    gone = get_user_model().objects.get(pk=volunteer.pk)
    assert gone.username.startswith("deleted-") and gone.email == "" and not gone.is_active
    assert not gone.has_usable_password()
    assert not EmailAddress.objects.exists() and not Token.objects.exists() and not Membership.objects.exists()
    vote = Classification.objects.get()
    assert vote.volunteer_id == volunteer.pk and vote.tile == tile  # the vote stays, under the pseudonym
    token = APIClient().post("/api/v1/auth/token/", {"username": "vol", "password": "vol-pass-123"})
    assert token.status_code == 400


def test_the_account_page_deletes_after_the_password_and_signs_out() -> None:
    user = get_user_model().objects.create_user("leaver", password="leaver-pass-123")
    from django.test import Client

    browser = Client()
    browser.force_login(user)
    refused = browser.post("/account/", {"password": "nope"}, follow=True)
    assert "not your password" in refused.content.decode()
    assert get_user_model().objects.get(pk=user.pk).is_active
    done = browser.post("/account/", {"password": "leaver-pass-123"}, follow=True)
    assert "Your account is deleted" in done.content.decode()
    assert not get_user_model().objects.get(pk=user.pk).is_active
    assert browser.get("/account/").status_code == 302  # signed out


def test_volunteers_cannot_tell_gold_tiles_nor_see_progress_per_tile(volunteer, platform_admin) -> None:
    project = project_with_tiles(cols=2, rows=1)
    gold = make_gold(project, 1)[0]
    api = client(volunteer)
    listed = api.get("/api/v1/projects/raqqa/tiles/").json()["results"]
    assert listed and all("status" not in t and "vote_count" not in t for t in listed)
    assert "status" not in api.get(f"/api/v1/tiles/{gold.pk}/").json()
    refused = api.get("/api/v1/projects/raqqa/tiles/?status=gold")
    assert refused.status_code == 403
    coordinator_view = client(platform_admin).get("/api/v1/projects/raqqa/tiles/?status=gold").json()["results"]
    assert [t["id"] for t in coordinator_view] == [gold.pk] and coordinator_view[0]["status"] == "gold"


def test_a_tile_whose_answer_the_tutorial_showed_does_not_take_the_volunteers_vote(volunteer) -> None:
    project = project_with_tiles(cols=3, rows=2)
    make_gold(project, 5)
    api = client(volunteer)
    tutorial = api.get("/api/v1/projects/raqqa/tutorial/").json()
    practice = tutorial["practice"][0]["id"]
    assert api.post(f"/api/v1/projects/raqqa/tutorial/practice/{practice}/", {"answer": "destroyed"},
                    format="json").status_code == 200
    # An API client that saw the answer posts it as a vote on the practice tile: refused, nothing stored.
    vote = api.post(f"/api/v1/tiles/{practice}/classifications/", {"answer": "destroyed", "seconds": 9},
                    format="json")
    assert vote.status_code == 409, vote.json()
    assert vote.json()["error"]["code"] == "practice_tile" and "tutorial" in vote.json()["error"]["message"]
    # The same for the examples, whose answers the tutorial shows once it is done.
    assert api.post("/api/v1/projects/raqqa/tutorial/done/").status_code == 200
    example = tutorial["examples"][0]["id"]
    assert api.post(f"/api/v1/tiles/{example}/classifications/", {"answer": "destroyed", "seconds": 9},
                    format="json").status_code == 409
    assert not Classification.objects.exists()
    assert Tile.objects.get(pk=practice).vote_count == 0


def test_practising_on_a_tile_the_volunteer_holds_a_lease_on_ends_that_lease(volunteer) -> None:
    project = project_with_tiles(cols=1, rows=1)
    tile = make_gold(project, 1)[0]
    api = client(volunteer)
    assert api.post("/api/v1/projects/raqqa/tasks/next/").json()["tile"]["id"] == tile.pk  # a live lease on it
    assert api.post(f"/api/v1/projects/raqqa/tutorial/practice/{tile.pk}/", {"answer": "destroyed"},
                    format="json").status_code == 200
    assert api.post(f"/api/v1/tiles/{tile.pk}/classifications/", {"answer": "destroyed", "seconds": 9},
                    format="json").status_code == 409
    assert api.post("/api/v1/projects/raqqa/tasks/next/").status_code == 204  # seen: never handed out again
