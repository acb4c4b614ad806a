"""Celery tasks for tagging: thin wrappers that re-fetch rows by id and call tagging's domain functions."""

from celery import shared_task

from tagging import classifications


@shared_task(name="workers.tagging.refresh_tile", acks_late=True, reject_on_worker_lost=True)
def refresh_tile_task(tile_id: int) -> int:
    """After a vote: recompute the tile's vote count from its stored votes (consensus hooks in here)."""
    return classifications.refresh_tile(tile_id=tile_id)
