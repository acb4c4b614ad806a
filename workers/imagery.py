"""Celery tasks for imagery: thin wrappers that re-fetch rows by id and call imagery.jobs."""

import logging

from celery import shared_task

from imagery import jobs

log = logging.getLogger(__name__)


@shared_task(name="workers.imagery.prepare_layer", acks_late=True, reject_on_worker_lost=True)
def prepare_layer_task(layer_id: int) -> int:
    """Prepare a layer for tiling and enqueue its chunks; returns the chunks enqueued."""
    return jobs.prepare_layer(layer_id=layer_id)


@shared_task(bind=True, name="workers.imagery.cut_chunk", acks_late=True, reject_on_worker_lost=True,
             max_retries=None)
def cut_chunk_task(self, chunk_id: int) -> int:  # type: ignore[no-untyped-def]
    """Cut one chunk of a layer into tiles; retried with backoff, then the layer fails with the reason."""
    try:
        return jobs.run_chunk(chunk_id=chunk_id)
    except Exception as exc:
        log.exception("chunk %s failed", chunk_id)
        if jobs.record_chunk_failure(chunk_id=chunk_id, error=f"{type(exc).__name__}: {exc}"):
            raise self.retry(countdown=min(2 ** self.request.retries, 60), exc=exc) from exc
        return 0


@shared_task(name="workers.imagery.sweep_imagery_jobs")
def sweep_imagery_jobs() -> int:
    """Periodic: re-enqueue tiling work left behind by dead workers or lost messages."""
    return jobs.sweep_imagery_jobs()
