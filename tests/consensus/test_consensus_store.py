"""The consensus in the database: a simulated crowd's votes, a whole-project run, the per-vote update,
early retirement, and the periodic and on-demand tasks."""

from __future__ import annotations

from datetime import date

import numpy as np
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from imagery.models import Tile
from tagging.classifications import MarkInput, record_classification
from tagging.consensus.labels import compute_majority_vote
from tagging.consensus.simulate import CANT_TELL, N_ANSWERS, POOR_CROWD, CrowdSpec, match_f1
from tagging.consensus_store import (
    MAJORITY_METHOD,
    VOTE_METHOD,
    projects_to_recompute,
    recompute_project,
    update_tile,
)
from tagging.models import Building, Classification, ConsensusRun, TileConsensus, VolunteerReliability
from tests.consensus.crowd_db import KEYS, CrowdProject, crowd_project
from tests.tagging.helpers import project_with_tiles
from workers.tagging import recompute_active_projects_task, recompute_project_task, refresh_tile_task

pytestmark = pytest.mark.django_db

POOR = CrowdSpec(n_cols=40, n_rows=40, n_volunteers=100, activity_sigma=1.0, gold_rate=0.05, seed=2, **POOR_CROWD)
GOOD = CrowdSpec(n_cols=16, n_rows=16, n_volunteers=40, activity_sigma=0.8, gold_rate=0.08, seed=3)


def stored_labels(made: CrowdProject) -> np.ndarray:
    """The stored label of every crowd tile, as the simulator's answer index."""
    by_tile = dict(TileConsensus.objects.filter(project=made.project).values_list("tile_id", "label"))
    return np.array([KEYS.index(by_tile[int(t)]) for t in made.tile_ids])


def test_a_run_labels_tiles_better_than_a_majority_vote_and_finds_the_buildings() -> None:
    made = crowd_project(POOR)
    crowd = made.crowd
    run = recompute_project(project_id=made.project.pk)
    assert run.status == ConsensusRun.Status.DONE and run.label_model
    assert TileConsensus.objects.filter(project=made.project).count() == crowd.n_tiles
    majority = compute_majority_vote(tile_idx=crowd.vote_tile, answer_idx=crowd.vote_answer, n_tiles=crowd.n_tiles,
                                     n_classes=N_ANSWERS, abstain=CANT_TELL).label
    ours = stored_labels(made)
    truth, ordinary = crowd.tile_label, made.non_gold
    assert (ours == truth)[ordinary].mean() > (majority == truth)[ordinary].mean() + 0.02
    # Gold tiles are clamped to their known answer.
    assert (ours == truth)[crowd.gold_tiles].all()
    # Buildings: in ground metres of the grid, found about where the simulator put them.
    found = np.array(list(Building.objects.filter(project=made.project, confidence__gte=0.5)
                          .values_list("ground_x", "ground_y")))
    truth_xy = made.ground(crowd.building_xy)
    precision, recall, f1 = match_f1(found_xy=found, true_xy=truth_xy, radius_m=5.0)
    assert f1 > 0.6, (precision, recall, f1)
    # The run says what it did, with which parameters, how long it took.
    assert run.counts["votes"] == len(crowd.vote_tile) and run.counts["clicks"] == len(crowd.click_cls)
    assert run.counts["tiles"] == crowd.n_tiles and run.counts["gold_tiles"] == len(crowd.gold_tiles)
    assert run.parameters["settings"]["prior_strength"] == 4.0 and "label_evidence_scale" in run.parameters["fitted"]
    assert run.parameters["answers"] == KEYS and set(run.timings) >= {"load_s", "labels_s", "buildings_s", "write_s"}


def test_volunteer_reliability_is_stored_per_volunteer_with_the_gold_it_rests_on() -> None:
    made = crowd_project(GOOD, slug="good")
    recompute_project(project_id=made.project.pk)
    crowd = made.crowd
    rows = {r.volunteer_id: r for r in VolunteerReliability.objects.filter(project=made.project)}
    voted = np.unique(crowd.vote_volunteer)
    assert set(rows) == {made.users[v].pk for v in voted}
    careless = [rows[made.users[v].pk].reliability for v in voted if crowd.volunteer_kind[v] != 0]
    good = [rows[made.users[v].pk].reliability for v in voted if crowd.volunteer_kind[v] == 0]
    assert np.mean(good) > np.mean(careless) + 0.3
    on_gold = np.isin(crowd.vote_tile, crowd.gold_tiles) & (crowd.vote_answer != CANT_TELL)
    right = on_gold & (crowd.vote_answer == crowd.tile_label[crowd.vote_tile])
    for v in voted[:10]:
        row = rows[made.users[v].pk]
        assert row.n_votes == (crowd.vote_volunteer == v).sum()
        assert row.n_gold == (on_gold & (crowd.vote_volunteer == v)).sum()
        assert row.n_gold_correct == (right & (crowd.vote_volunteer == v)).sum()
        assert set(row.confusion) == {"destroyed", "damaged", "no_damage"}
        assert sum(row.confusion["destroyed"].values()) == pytest.approx(1.0, abs=1e-3)


def test_a_second_run_gives_the_same_rows_and_keeps_building_ids() -> None:
    made = crowd_project(GOOD, slug="good")
    first = recompute_project(project_id=made.project.pk)
    before_tiles = dict(TileConsensus.objects.values_list("tile_id", "confidence"))
    before_buildings = dict(Building.objects.values_list("id", "confidence"))
    second = recompute_project(project_id=made.project.pk)
    assert dict(TileConsensus.objects.values_list("tile_id", "confidence")) == before_tiles
    assert dict(Building.objects.values_list("id", "confidence")) == before_buildings
    assert set(TileConsensus.objects.values_list("run", flat=True)) == {second.pk}
    first.refresh_from_db()
    assert first.label_model is None and second.label_model  # only the latest run keeps its model


def test_every_building_names_the_classifications_and_marks_behind_it() -> None:
    made = crowd_project(GOOD, slug="good")
    recompute_project(project_id=made.project.pk)
    buildings = list(Building.objects.filter(project=made.project, confidence__gte=0.5))
    assert buildings
    for building in buildings[:30]:
        marks = Classification.objects.filter(pk__in=building.classification_ids, marks__id__in=building.mark_ids)
        assert len(building.mark_ids) >= building.n_support or building.is_gold
        assert marks.values("volunteer").distinct().count() == building.n_support
        supporters = set(Classification.objects.filter(pk__in=building.classification_ids)
                         .values_list("volunteer", flat=True))
        opponents = set(Classification.objects.filter(pk__in=building.opposing_classification_ids)
                        .values_list("volunteer", flat=True))
        assert not supporters & opponents
        assert len(opponents) == building.n_oppose
        assert -180 <= building.lon <= 180 and -90 <= building.lat <= 90


def test_date_windows_are_stored_for_a_project_with_several_dates() -> None:
    spec = CrowdSpec(n_cols=16, n_rows=16, n_volunteers=40, activity_sigma=0.8, n_dates=3, destroyed_per_tile=0.8,
                     seed=4)
    dates = ("2017-08-01", "2017-10-01", "2017-06-01")  # uploaded out of order: windows go by date
    made = crowd_project(spec, slug="dated", dates=dates)
    dates = tuple(sorted(dates))
    recompute_project(project_id=made.project.pk)
    crowd = made.crowd
    truth_xy = made.ground(crowd.building_xy)
    right, total = 0, 0
    for b in Building.objects.filter(project=made.project, confidence__gte=0.5).exclude(first_destroyed=None):
        distance = np.hypot(*(truth_xy - [b.ground_x, b.ground_y]).T)
        nearest = int(distance.argmin())
        if distance[nearest] > 5:
            continue
        total += 1
        right += b.first_destroyed == date.fromisoformat(dates[crowd.building_date[nearest]])
        assert b.last_intact is None or b.last_intact < b.first_destroyed
        assert 0 < b.window_confidence <= 1
    assert total > 20 and right / total > 0.8, (right, total)


def vote(tile: Tile, user, answer: str, marks: list[MarkInput] | None = None) -> Classification:
    classification, _ = record_classification(volunteer=user, tile=tile, answer=answer, marks=marks or [], seconds=9)
    return classification


def test_before_any_run_the_per_vote_update_counts_votes(django_user_model, django_capture_on_commit_callbacks) -> None:
    project = project_with_tiles()
    tile = Tile.objects.filter(grid__project=project).first()
    users = [django_user_model.objects.create_user(f"u{i}") for i in range(3)]
    with django_capture_on_commit_callbacks(execute=True):
        for user, answer in zip(users, ["destroyed", "destroyed", "cant_tell"]):
            vote(tile, user, answer)
    row = TileConsensus.objects.get(tile=tile)
    assert (row.label, row.method, row.n_votes, row.n_decisive) == ("destroyed", MAJORITY_METHOD, 3, 2)
    assert row.counts == {"destroyed": 2, "damaged": 0, "no_damage": 0, "cant_tell": 1} and row.agreement == 1.0


def test_the_per_vote_update_rescores_a_tile_with_the_latest_model(django_capture_on_commit_callbacks) -> None:
    made = crowd_project(GOOD, slug="good")
    run = recompute_project(project_id=made.project.pk)
    crowd = made.crowd
    # Right after a run, the update agrees with the run (every vote counted, its own share taken out).
    for t in np.flatnonzero(made.non_gold)[:20].tolist():
        stored = TileConsensus.objects.get(tile_id=made.tile_ids[t])
        updated = update_tile(tile_id=int(made.tile_ids[t]))
        assert updated.label == stored.label and updated.confidence == pytest.approx(stored.confidence, abs=1e-6)
    # A tile the crowd called "no damage", then reliable volunteers who had not seen it say "destroyed".
    reliability = dict(VolunteerReliability.objects.filter(project=made.project)
                       .values_list("volunteer_id", "reliability"))
    before = (TileConsensus.objects.filter(project=made.project, label="no_damage")
              .exclude(tile__status=Tile.Status.GOLD).order_by("confidence").first())  # the least sure
    tile = before.tile
    tile_idx = int(np.flatnonzero(made.tile_ids == tile.pk)[0])
    seen = set(crowd.vote_volunteer[crowd.vote_tile == tile_idx].tolist())
    fresh = sorted((u for i, u in enumerate(made.users) if i not in seen and u.pk in reliability),
                   key=lambda u: -reliability[u.pk])[:8]
    Tile.objects.filter(pk=tile.pk).update(status=Tile.Status.OPEN)
    made.project.redundancy = 20
    made.project.save()
    with django_capture_on_commit_callbacks(execute=True):
        vote(tile, fresh[0], "destroyed", [MarkInput(100, 100)])
    row = TileConsensus.objects.get(tile=tile)
    assert row.method == VOTE_METHOD and row.run_id == run.pk
    assert row.n_votes == before.n_votes + 1 and row.counts["destroyed"] == before.counts["destroyed"] + 1
    assert row.label != "no_damage" or row.confidence < before.confidence
    with django_capture_on_commit_callbacks(execute=True):
        for user in fresh[1:]:
            vote(tile, user, "destroyed", [MarkInput(100, 100)])
    assert TileConsensus.objects.get(tile=tile).label == "destroyed"


def test_the_per_vote_update_takes_three_queries() -> None:
    made = crowd_project(GOOD, slug="good")
    run = recompute_project(project_id=made.project.pk)
    assert run is not None
    tile_ids = made.tile_ids[made.non_gold][:2].tolist()
    update_tile(tile_id=tile_ids[0])  # loads the model once per process
    stale = TileConsensus.objects.get(tile_id=tile_ids[1]).updated_at
    with CaptureQueriesContext(connection) as queries:
        row = update_tile(tile_id=tile_ids[1])
    # The locked tile with its project and the latest run's id, its votes, one UPDATE (and BEGIN, COMMIT).
    # Its time is measured by bench/consensus/db.py, not here.
    sql = [q["sql"] for q in queries if q["sql"] not in ("BEGIN", "COMMIT") and "SAVEPOINT" not in q["sql"]]
    assert len(sql) == 3, sql
    assert row is not None and row.run_id == run.pk  # scored with the latest run's model
    assert TileConsensus.objects.get(tile_id=tile_ids[1]).updated_at > stale  # and stored by the one UPDATE


def early_retirement_case(threshold: float | None, **settings: object) -> tuple[CrowdProject, Tile, list]:
    """A good crowd's project after a run, with one tile emptied of votes and reopened."""
    made = crowd_project(GOOD, slug="early", consensus_settings=settings)
    made.project.retire_confidence = threshold
    made.project.save()
    recompute_project(project_id=made.project.pk)
    reliability = dict(VolunteerReliability.objects.filter(project=made.project)
                       .values_list("volunteer_id", "reliability"))
    tile_idx = int(np.flatnonzero(made.non_gold & (made.crowd.tile_label == 2))[0])  # truly "no damage"
    tile = Tile.objects.get(pk=made.tile_ids[tile_idx])
    Classification.objects.filter(tile=tile).delete()
    Tile.objects.filter(pk=tile.pk).update(status=Tile.Status.OPEN, vote_count=0)
    tile.refresh_from_db()
    best = sorted((u for u in made.users if u.pk in reliability), key=lambda u: -reliability[u.pk])
    return made, tile, best


@pytest.mark.parametrize(("threshold", "answers", "retired"), [
    (0.99, ["no_damage", "no_damage"], True),
    (0.99, ["no_damage"], False),  # one reliable vote may be that sure, but fewer than 2 never retire early
    (0.99, ["no_damage", "destroyed"], False),  # they disagree
    (0.99, ["no_damage", "cant_tell"], False),  # an abstention is not a vote
    (None, ["no_damage", "no_damage"], False),  # the project does not retire early
])
def test_a_tile_retires_early_once_its_consensus_is_sure_enough(
        django_capture_on_commit_callbacks, threshold, answers, retired) -> None:
    made, tile, best = early_retirement_case(threshold)
    with django_capture_on_commit_callbacks(execute=True):
        for user, answer in zip(best, answers):
            vote(tile, user, answer, [MarkInput(10, 10)] if answer == "destroyed" else [])
    tile.refresh_from_db()
    row = TileConsensus.objects.get(tile=tile)
    assert (tile.status == Tile.Status.RETIRED) is retired, row.confidence
    assert tile.vote_count == len(answers)


def test_the_minimum_of_votes_for_early_retirement_is_a_project_setting(django_capture_on_commit_callbacks) -> None:
    made, tile, best = early_retirement_case(0.99, retire_min_votes=3)
    with django_capture_on_commit_callbacks(execute=True):
        vote(tile, best[0], "no_damage")
        vote(tile, best[1], "no_damage")
    tile.refresh_from_db()
    assert tile.status == Tile.Status.OPEN
    with django_capture_on_commit_callbacks(execute=True):
        vote(tile, best[2], "no_damage")
    tile.refresh_from_db()
    assert tile.status == Tile.Status.RETIRED


def test_a_run_retires_confident_tiles_but_never_gold_ones() -> None:
    made = crowd_project(GOOD, slug="good")
    Tile.objects.filter(grid__project=made.project).exclude(status=Tile.Status.GOLD).update(status=Tile.Status.OPEN)
    made.project.retire_confidence = 0.95
    made.project.save()
    run = recompute_project(project_id=made.project.pk)
    retired = Tile.objects.filter(grid__project=made.project, status=Tile.Status.RETIRED)
    assert run.counts["retired"] == retired.count() > 0
    assert not retired.filter(consensus__confidence__lt=0.95).exists()
    gold = Tile.objects.filter(grid__project=made.project, status=Tile.Status.GOLD)
    assert gold.count() == len(made.crowd.gold_tiles)


def test_a_vote_on_a_tile_recomputes_its_count_and_its_consensus_through_the_task(django_user_model) -> None:
    project = project_with_tiles()
    tile = Tile.objects.filter(grid__project=project).first()
    Classification.objects.create(project=project, tile=tile, volunteer=django_user_model.objects.create_user("a"),
                                  answer="no_damage")
    assert refresh_tile_task.delay(tile.pk).get() == 1
    assert TileConsensus.objects.get(tile=tile).label == "no_damage"
    assert refresh_tile_task.delay(tile.pk).get() == 1  # a duplicate message changes nothing
    assert TileConsensus.objects.filter(tile=tile).count() == 1
    assert refresh_tile_task.delay(999_999).get() == 0  # a vanished tile is skipped


def test_votes_of_a_deleted_account_still_count(django_user_model) -> None:
    made = crowd_project(GOOD, slug="good")
    gone = made.users[int(np.bincount(made.crowd.vote_volunteer).argmax())]
    votes = Classification.objects.filter(volunteer=gone).count()
    gone.delete()  # votes are kept, anonymous (volunteer set to null)
    run = recompute_project(project_id=made.project.pk)
    assert run.counts["votes"] == len(made.crowd.vote_tile) and votes > 0
    assert not VolunteerReliability.objects.filter(volunteer_id=gone.pk).exists()


def test_bad_consensus_settings_fail_the_run_with_the_reason() -> None:
    made = crowd_project(CrowdSpec(n_cols=3, n_rows=3, n_volunteers=5, seed=1), slug="bad",
                         consensus_settings={"prior_strenght": 2})
    assert recompute_project_task.delay(made.project.pk).get() == 0
    run = ConsensusRun.objects.get(project=made.project)
    assert run.status == ConsensusRun.Status.FAILED and "prior_strenght" in run.error


def test_the_periodic_task_recomputes_active_projects_with_new_votes_only(django_user_model) -> None:
    made = crowd_project(CrowdSpec(n_cols=4, n_rows=4, n_volunteers=8, seed=1), slug="busy")
    quiet = project_with_tiles("quiet")
    assert projects_to_recompute() == [made.project.pk]
    assert recompute_active_projects_task.delay().get() == 1  # eager: the recompute ran inline
    assert ConsensusRun.objects.filter(project=made.project, status="done").count() == 1
    assert projects_to_recompute() == []
    tile = Tile.objects.filter(grid__project=made.project, status=Tile.Status.OPEN).first()
    Classification.objects.create(project=made.project, tile=tile, volunteer=django_user_model.objects.create_user("z"),
                                  answer="destroyed")
    assert projects_to_recompute() == [made.project.pk]
    assert quiet.pk not in projects_to_recompute()


def test_a_run_of_a_project_without_votes_stores_nothing() -> None:
    project = project_with_tiles()
    run = recompute_project(project_id=project.pk)
    assert run.status == "done" and run.counts["votes"] == 0 and run.label_model is None
    assert not TileConsensus.objects.exists() and not Building.objects.exists()
    assert recompute_project(project_id=987_654) is None


def test_a_failed_run_is_not_retried_every_period_nor_a_project_with_a_run_under_way(django_user_model) -> None:
    made = crowd_project(CrowdSpec(n_cols=3, n_rows=3, n_volunteers=5, seed=1), slug="bad",
                         consensus_settings={"link_radius_m": "six"})
    assert projects_to_recompute() == [made.project.pk]
    assert recompute_active_projects_task.delay().get() == 1
    assert ConsensusRun.objects.get(project=made.project).status == ConsensusRun.Status.FAILED
    assert projects_to_recompute() == []  # nothing new since it failed
    made.project.consensus_settings = {"link_radius_m": 6}
    made.project.save()
    Classification.objects.create(project=made.project, tile=Tile.objects.filter(grid__project=made.project).first(),
                                  volunteer=django_user_model.objects.create_user("late"), answer="damaged")
    assert projects_to_recompute() == [made.project.pk]
    ConsensusRun.objects.create(project=made.project, method="under way")
    assert projects_to_recompute() == []
