"""The consensus tasks in a real Celery worker process: an import's recompute, and the periodic one from beat."""

import pytest

from imagery.models import Tile
from tagging.models import Classification, ConsensusRun, PendingTileUpdate, TileConsensus
from tests.tagging.helpers import project_with_tiles
from tests.test_worker import manage, platform_env, start_worker, wait_for  # noqa: F401 (fixtures)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]


def test_a_worker_recomputes_an_import_and_its_beat_picks_up_new_votes(platform_env, start_worker,  # noqa: F811
                                                                        tmp_path, django_user_model) -> None:
    project = project_with_tiles()
    votes = tmp_path / "votes.csv"
    votes.write_text("tile_col,tile_row,volunteer,answer,marks\n0,0,ann,destroyed,\"[[10, 10]]\"\n"
                     "0,0,ben,destroyed,\"[[12, 11]]\"\n1,0,ann,no_damage,\n", encoding="utf-8")
    platform_env["CONSENSUS_RECOMPUTE_SECONDS"] = "1"
    start_worker()
    result = manage(platform_env, "import_classifications", "raqqa", str(votes))
    assert result.returncode == 0, result.stderr
    done = ConsensusRun.objects.filter(project=project, status=ConsensusRun.Status.DONE)
    wait_for(lambda: done.exists(), 90, "the recompute the import enqueued")
    assert TileConsensus.objects.filter(project=project).count() == 2
    assert TileConsensus.objects.get(tile__col=0, tile__row=0).label == "destroyed"
    # A vote that no task announces (a lost message): the periodic recompute finds it.
    tile = Tile.objects.get(grid__project=project, col=2, row=1)
    Classification.objects.create(project=project, tile=tile, volunteer=django_user_model.objects.create_user("cy"),
                                  answer="damaged")
    # Wait for the run itself: the first run's own catch-up (votes after its watermark, re-scored once it has
    # committed) may score this tile before the beat's run does.
    wait_for(lambda: done.count() >= 2, 90, "the periodic recompute")
    assert TileConsensus.objects.get(tile=tile).counts["damaged"] == 1


VOTES_SCRIPT = """
from django.contrib.auth import get_user_model
from imagery.models import Tile
from tagging.classifications import MarkInput, record_classification
tile = Tile.objects.get(grid__project__slug="raqqa", col=0, row=0)
for name in ("ann", "ben", "cy"):
    user = get_user_model().objects.create_user(name)
    record_classification(volunteer=user, tile=tile, answer="destroyed", marks=[MarkInput(9, 9)], seconds=9)
"""


def test_votes_reach_the_consensus_through_a_worker(platform_env, start_worker) -> None:  # noqa: F811
    """Votes in another process (as gunicorn's): their tile is marked pending, one message asks a worker, which
    re-scores the tile and forgets it."""
    project = project_with_tiles()
    start_worker()
    result = manage(platform_env, "shell", "-c", VOTES_SCRIPT)
    assert result.returncode == 0, result.stderr
    tile = Tile.objects.get(grid__project=project, col=0, row=0)
    wait_for(lambda: not PendingTileUpdate.objects.exists(), 90, "the pending tile's update")
    row = TileConsensus.objects.get(tile=tile)
    assert (row.label, row.n_votes) == ("destroyed", 3)
    assert Tile.objects.get(pk=tile.pk).vote_count == 3
