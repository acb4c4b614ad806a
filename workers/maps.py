"""Celery tasks for the coordinators' map: thin wrappers over tagging.map_state."""

from celery import shared_task

from tagging import map_state


@shared_task(name="workers.maps.rebuild_map_state", acks_late=True, reject_on_worker_lost=True)
def rebuild_map_state_task(project_id: int) -> int:
    """Check a project's published map state and rebuild and publish it when its rows moved (or it is
    STATE_MAX_SECONDS old); frees the refresh lock whatever happens. Returns 1 when a state was built, else 0.

    Idempotent: a check repeated after a lost worker finds the state it published current.
    """
    return 1 if map_state.refresh_map_state(project_id=project_id) is not None else 0
