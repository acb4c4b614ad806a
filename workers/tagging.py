"""Celery tasks for tagging: thin wrappers that re-fetch rows by id and call tagging's domain functions."""

import logging

from celery import shared_task

from config.errors import InvalidInput
from tagging import classifications, consensus_store, tile_updates
from tagging.models import PendingTileUpdate

log = logging.getLogger(__name__)


@shared_task(name="workers.tagging.update_pending_tiles", acks_late=True, reject_on_worker_lost=True)
def update_pending_tiles_task() -> int:
    """After votes: re-score the pending tiles' vote counts and consensus (tagging.tile_updates); returns how many.

    A task that leaves tiles pending (a long backlog) publishes the next one, so one task never runs for long.
    """
    done, more = tile_updates.update_pending_tiles()
    if more:
        update_pending_tiles_task.delay()
    return done


@shared_task(name="workers.tagging.refresh_tile", acks_late=True, reject_on_worker_lost=True)
def refresh_tile_task(tile_id: int) -> int:
    """Recompute one tile's vote count and its consensus from its stored votes; returns the count.

    Votes no longer send it (update_pending_tiles_task): kept for messages already in a queue, and for scripts.
    """
    votes = classifications.refresh_tile(tile_id=tile_id)
    consensus_store.update_tile(tile_id=tile_id)
    return votes


@shared_task(name="workers.tagging.recompute_project", acks_late=True, reject_on_worker_lost=True)
def recompute_project_task(project_id: int) -> int:
    """Re-estimate a project's whole consensus from its stored votes; returns the run id (0 if none ran).

    Bad consensus settings are not transient: the run is recorded as failed with the reason, no retry.
    """
    try:
        run = consensus_store.recompute_project(project_id=project_id)
    except InvalidInput as exc:
        log.warning("consensus of project %s not recomputed: %s", project_id, exc.message)
        return 0
    return run.pk if run else 0


@shared_task(name="workers.tagging.recompute_active_projects")
def recompute_active_projects_task() -> int:
    """Periodic: enqueue a recompute of every active project with votes or gold newer than its last run."""
    if PendingTileUpdate.objects.exists():  # a vote whose update message was lost (the broker was down)
        update_pending_tiles_task.delay()
    due = consensus_store.projects_to_recompute()
    for project_id in due:
        recompute_project_task.delay(project_id)
    return len(due)
