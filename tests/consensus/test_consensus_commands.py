"""The consensus commands: import votes and gold from CSV, recompute, export; all or nothing, exactly once."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command

from imagery.models import Tile
from tagging.consensus.labels import compute_majority_vote
from tagging.consensus.simulate import CANT_TELL, N_ANSWERS, POOR_CROWD, CrowdSpec
from tagging.models import Building, Classification, ConsensusRun, GoldAnswer, Mark, Project, TileConsensus
from tests.consensus.crowd_db import KEYS, crowd_project, tile_pixels
from tests.tagging.helpers import project_with_tiles

pytestmark = pytest.mark.django_db

HEADER = "tile_col,tile_row,volunteer,answer,marks,seconds,created_at\n"


def write(tmp_path: Path, text: str, name: str = "votes.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def run(*args: str) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def test_import_stores_votes_marks_dates_and_new_volunteers(tmp_path, django_capture_on_commit_callbacks) -> None:
    project_with_tiles(dates=("2017-06-01", "2017-10-01"))
    path = write(tmp_path, HEADER
                 + '0,0,alice,destroyed,"[[120.5, 88], [10, 10, ""2017-10-01""]]",12.5,2017-10-02T08:00:00Z\n'
                 + "0,0,bob,no_damage,,,\n"
                 + "1,1,alice,cant_tell,[],0.4,2017-10-03\n")
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        out = run("import_classifications", "raqqa", str(path))
    assert "3 rows: 3 votes stored, 0 already there; 2 new volunteer accounts" in out
    assert len(callbacks) == 1  # one recompute of the project, not one update per vote
    alice = get_user_model().objects.get(username="alice")
    assert not alice.has_usable_password()
    first = Classification.objects.get(volunteer=alice, tile__col=0, tile__row=0)
    assert (first.answer, first.seconds, first.source, first.created_at.isoformat()) == (
        "destroyed", 12.5, "import", "2017-10-02T08:00:00+00:00")
    marks = list(first.marks.order_by("x"))
    assert [(m.x, m.y) for m in marks] == [(10.0, 10.0), (120.5, 88.0)]
    assert marks[0].layer.date.isoformat() == "2017-10-01" and marks[1].layer is None
    assert marks[1].ground_x == pytest.approx(first.tile.minx + 60.25)
    assert Classification.objects.get(volunteer=alice, tile__col=1).too_fast  # 0.4 s: kept out of the consensus
    tile = Tile.objects.get(col=0, row=0)
    assert tile.vote_count == 2


def test_reimporting_the_same_file_adds_nothing(tmp_path) -> None:
    project_with_tiles()
    path = write(tmp_path, HEADER + '0,0,alice,destroyed,"[[5,5]]",9,\n1,0,alice,no_damage,,9,\n')
    run("import_classifications", "raqqa", str(path))
    out = run("import_classifications", "raqqa", str(path))
    assert "2 rows: 0 votes stored, 2 already there; 0 new volunteer accounts" in out
    assert Classification.objects.count() == 2 and Mark.objects.count() == 1
    assert Tile.objects.get(col=0, row=0).vote_count == 1


def test_an_import_needs_no_lease_nor_an_open_tile(tmp_path) -> None:
    project = project_with_tiles(redundancy=1)
    Project.objects.filter(pk=project.pk).update(status=Project.Status.FINISHED)
    path = write(tmp_path, HEADER + "0,0,alice,destroyed,,9,\n0,0,bob,destroyed,,9,\n")  # bob's comes after retirement
    run("import_classifications", "raqqa", str(path))
    assert Classification.objects.count() == 2


BAD_ROWS = [
    ("7,0,alice,destroyed,,,", "no tile (7, 0)"),
    ("x,0,alice,destroyed,,,", "whole numbers"),
    ("0,0,alice,flattened,,,", "'flattened' is not an answer of this project"),
    ('0,0,alice,no_damage,"[[5,5]]",,', "Marks go with an answer that says there is damage"),
    ('0,0,alice,destroyed,"[[600,5]]",,', "outside the tile"),
    ('0,0,alice,destroyed,"[[5,5,""2001-01-01""]]",,', "not one of this project's dates"),
    ("0,0,alice,destroyed,[[5]],,", "mark 1 must be"),
    ("0,0,alice,destroyed,not json,,", "marks must be a JSON list"),
    ("0,0,alice,destroyed,,fast,", "seconds must be a number"),
    ("0,0,alice,destroyed,,-3,", "seconds must be between 0 and 86400"),
    ("0,0,alice,destroyed,,,yesterday", "created_at must be an ISO date"),
    ("0,0,,destroyed,,,", "is not a pseudonym"),
    ("0,0,al ice,destroyed,,,", "is not a pseudonym"),
    ("0,0,alice,destroyed,,,,extra", "more fields than the header"),
    ("1,1,carol,destroyed,,,", "carol answered tile (1, 1) already on line 2"),
]


@pytest.mark.parametrize(("row", "reason"), BAD_ROWS)
def test_a_bad_row_is_reported_with_its_line_and_nothing_is_stored(tmp_path, row: str, reason: str) -> None:
    project_with_tiles()
    users_before = get_user_model().objects.count()
    path = write(tmp_path, HEADER + '1,1,carol,destroyed,"[[5,5]]",9,\n' + "0,1,dave,no_damage,,9,\n" + row + "\n")
    with pytest.raises(CommandError) as failure:
        run("import_classifications", "raqqa", str(path))
    message = str(failure.value)
    assert "Nothing was imported" in message and "votes.csv, line 4:" in message and reason in message, message
    assert not Classification.objects.exists() and get_user_model().objects.count() == users_before


def test_every_bad_row_is_listed(tmp_path) -> None:
    project_with_tiles()
    path = write(tmp_path, HEADER + "9,9,a,destroyed,,,\n0,0,b,destroyed,,,\n0,0,c,maybe,,,\n")
    with pytest.raises(CommandError) as failure:
        run("import_classifications", "raqqa", str(path))
    assert "2 bad row(s)" in str(failure.value)
    assert "line 2:" in str(failure.value) and "line 4:" in str(failure.value) and "line 3:" not in str(failure.value)


@pytest.mark.parametrize(("header", "reason"), [
    ("tile_col,tile_row,answer\n", "missing column(s) volunteer"),
    ("tile_col,tile_row,volunteer,answer,colour\n", "unknown column(s) colour"),
    ("", "missing column(s) tile_col, tile_row, volunteer, answer"),
])
def test_a_bad_header_is_reported_as_line_1(tmp_path, header: str, reason: str) -> None:
    project_with_tiles()
    with pytest.raises(CommandError, match=r"line 1: " + reason.replace("(", r"\(").replace(")", r"\)")):
        run("import_classifications", "raqqa", str(write(tmp_path, header + "0,0,a,destroyed\n")))


def test_import_gold_makes_gold_tiles_with_their_answers(tmp_path) -> None:
    project = project_with_tiles()
    voted = Classification.objects.create(project=project, tile=Tile.objects.get(col=1, row=0),
                                          volunteer=get_user_model().objects.create_user("early"), answer="damaged")
    path = write(tmp_path, "tile_col,tile_row,answer,marks\n0,0,destroyed,\"[[10, 20], [300, 40.5]]\"\n"
                 "1,0,no_damage,\n", "gold.csv")
    assert "2 gold tiles: 2 new or changed, 0 unchanged" in run("import_gold", "raqqa", str(path))
    gold = GoldAnswer.objects.get(tile__col=0, tile__row=0)
    assert gold.answer == "destroyed" and gold.marks == [[10.0, 20.0], [300.0, 40.5]]
    assert set(Tile.objects.filter(status=Tile.Status.GOLD).values_list("col", "row")) == {(0, 0), (1, 0)}
    voted.refresh_from_db()
    assert voted.is_gold
    assert "2 gold tiles: 0 new or changed, 2 unchanged" in run("import_gold", "raqqa", str(path))
    assert GoldAnswer.objects.count() == 2


@pytest.mark.parametrize(("row", "reason"), [
    ("0,0,cant_tell,", "must be decisive"),
    ('0,0,destroyed,"[[5,5,""2017-06-01""]]"', "mark 1 must be [x, y]"),
    ('0,0,no_damage,"[[5,5]]"', "Marks go with an answer that says there is damage"),
    ("5,5,destroyed,", "no tile (5, 5)"),
])
def test_a_bad_gold_row_stores_nothing(tmp_path, row: str, reason: str) -> None:
    project_with_tiles()
    path = write(tmp_path, "tile_col,tile_row,answer,marks\n1,1,destroyed,\n" + row + "\n", "gold.csv")
    with pytest.raises(CommandError) as failure:
        run("import_gold", "raqqa", str(path))
    assert "gold.csv, line 3:" in str(failure.value) and reason in str(failure.value)
    assert not GoldAnswer.objects.exists() and not Tile.objects.filter(status=Tile.Status.GOLD).exists()


def test_commands_name_an_unknown_project_or_file(tmp_path) -> None:
    with pytest.raises(CommandError, match="no project 'nowhere'"):
        run("recompute_consensus", "nowhere")
    project_with_tiles()
    with pytest.raises(CommandError, match="no file"):
        run("import_classifications", "raqqa", str(tmp_path / "missing.csv"))


def crowd_csv(made, tmp_path: Path) -> tuple[Path, Path]:
    """The simulated crowd's votes and gold as the CSV files another platform would hand over."""
    crowd = made.crowd
    clicks_of = {}
    for k, cls in enumerate(crowd.click_cls.tolist()):
        clicks_of.setdefault(cls, []).append(k)
    col_row = {int(t): (t // crowd.spec.n_rows, crowd.spec.n_rows - 1 - t % crowd.spec.n_rows)
               for t in range(crowd.n_tiles)}
    votes = io.StringIO()
    out = csv.writer(votes)
    out.writerow(["tile_col", "tile_row", "volunteer", "answer", "marks", "seconds"])
    for i, (t, v, a) in enumerate(zip(crowd.vote_tile.tolist(), crowd.vote_volunteer.tolist(),
                                      crowd.vote_answer.tolist())):
        ks = clicks_of.get(i, [])
        pixels = np.round(tile_pixels(made, t, crowd.click_xy[ks]), 2).tolist() if ks else []
        out.writerow([*col_row[t], f"crowd{v}", KEYS[a], json.dumps(pixels) if pixels else "", 10])
    gold = io.StringIO()
    out = csv.writer(gold)
    out.writerow(["tile_col", "tile_row", "answer", "marks"])
    for t in crowd.gold_tiles.tolist():
        stored = GoldAnswer.objects.get(tile_id=made.tile_ids[t])
        out.writerow([*col_row[t], stored.answer, json.dumps(stored.marks)])
    return write(tmp_path, votes.getvalue()), write(tmp_path, gold.getvalue(), "gold.csv")


def test_end_to_end_a_crowd_imported_recomputed_and_exported(tmp_path) -> None:
    """A recorded crowd replayed through the commands: labels beat a majority vote, the exports parse."""
    spec = CrowdSpec(n_cols=24, n_rows=24, n_volunteers=50, activity_sigma=1.0, gold_rate=0.06, seed=2, **POOR_CROWD)
    source = crowd_project(spec, slug="recorded")  # where the truth and the files come from
    votes_csv, gold_csv = crowd_csv(source, tmp_path)
    target = crowd_project(spec, slug="replay", with_votes=False)
    GoldAnswer.objects.filter(tile__grid__project=target.project).delete()
    Tile.objects.filter(grid__project=target.project).update(status=Tile.Status.OPEN)
    run("import_gold", "replay", str(gold_csv))
    assert "0 votes stored" not in run("import_classifications", "replay", str(votes_csv))
    assert "Consensus run" in run("recompute_consensus", "replay")
    crowd = target.crowd
    assert Classification.objects.filter(project=target.project).count() == len(crowd.vote_tile)
    by_tile = dict(TileConsensus.objects.filter(project=target.project).values_list("tile_id", "label"))
    ours = np.array([KEYS.index(by_tile[int(t)]) for t in target.tile_ids])
    majority = compute_majority_vote(tile_idx=crowd.vote_tile, answer_idx=crowd.vote_answer, n_tiles=crowd.n_tiles,
                                     n_classes=N_ANSWERS, abstain=CANT_TELL).label
    ordinary = target.non_gold
    assert (ours == crowd.tile_label)[ordinary].mean() > (majority == crowd.tile_label)[ordinary].mean()
    assert ConsensusRun.objects.get(project=target.project).counts["clicks"] == len(crowd.click_cls)

    out = run("export_consensus", "replay", "--out", str(tmp_path / "export"))
    assert out.count("wrote ") == 4
    tiles = json.loads((tmp_path / "export" / "tiles.geojson").read_text())
    assert len(tiles["features"]) == crowd.n_tiles and tiles["properties"]["run"]["counts"]["votes"] > 0
    buildings = json.loads((tmp_path / "export" / "buildings.geojson").read_text())
    assert len(buildings["features"]) == Building.objects.filter(project=target.project, confidence__gte=0.5).count()
    with (tmp_path / "export" / "tiles.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == crowd.n_tiles and {"tile_col", "tile_row", "label", "confidence", "agreement"} <= set(rows[0])
    with (tmp_path / "export" / "buildings.csv").open(newline="") as handle:
        assert {"lon", "lat", "confidence", "votes_for", "votes_against"} <= set(csv.DictReader(handle).fieldnames)
    assert not list((tmp_path / "export").glob(".*partial"))
