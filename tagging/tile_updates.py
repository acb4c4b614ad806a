"""After a vote: the tile's consensus re-scored by a worker, in batches, exactly when needed.

A vote marks its tile pending (a PendingTileUpdate row) in the vote's own statement, so no vote
commits without it. After commit the web process asks a worker to update pending tiles, at most once
per UPDATE_DELAY_S per process: the task is published with that delay, so every vote committed before
it starts is in the database it reads, and the votes that come meanwhile need no message of their own.
The worker takes the pending tiles in batches (update_pending_tiles): it locks them, forgets them and
re-scores them in one transaction, so a worker that dies leaves them pending for the next.

One Celery message and one re-scoring per tile and vote cost about a quarter of the machine's CPU at
saturation (bench.volunteers): the message in the web process, the task, the tile's queries. Batching
keeps the consensus a fraction of a second behind the votes for a small share of that.
"""

import logging
import threading
import time
from collections.abc import Sequence

from django.db import connection, transaction
from django.utils import timezone

from tagging.consensus_store import update_tiles
from tagging.models import PendingTileUpdate
from tagging.rows import placeholders

log = logging.getLogger(__name__)

UPDATE_DELAY_S = 0.5  # how long a vote's tile may wait for its consensus update (plus the batch's own time)
BATCH = 200  # tiles re-scored in one transaction
MAX_BATCHES = 50  # per task; a task that leaves tiles pending publishes the next one
PENDING_SQL = f"""INSERT INTO {PendingTileUpdate._meta.db_table} (tile_id, since) VALUES (%(tile_id)s, %(created_at)s)
                  ON CONFLICT DO NOTHING"""  # a step of a vote on SQLite; tagging_cast_vote writes it on PostgreSQL

_scheduled_until = 0.0  # time.monotonic() before which a task already published will start
_schedule_lock = threading.Lock()


def mark_pending(tile_ids: Sequence[int]) -> None:
    """Mark tiles pending (outside a vote: gold answers changed) and ask for an update after commit."""
    now = timezone.now()
    PendingTileUpdate.objects.bulk_create([PendingTileUpdate(tile_id=tile_id, since=now) for tile_id in tile_ids],
                                          ignore_conflicts=True)
    transaction.on_commit(schedule_update)


def schedule_update() -> None:
    """Ask a worker to update the pending tiles, unless a task published by this process will start later.

    Never raises: a vote is stored whatever happens here. When the broker refuses the message, the
    periodic consensus sweep (workers.tagging.recompute_active_projects) finds the pending tiles.
    """
    global _scheduled_until
    now = time.monotonic()
    # Most votes stop here, before the import and Celery's settings below: 2.6% of a vote's Python samples (py-spy,
    # in process). Read without the lock: a stale value only leads to the check under it.
    if now < _scheduled_until:
        return
    from workers.tagging import update_pending_tiles_task  # workers import the domain, not the other way round

    if update_pending_tiles_task.app.conf.task_always_eager:
        update_pending_tiles_task.delay()  # tests and the demo loader: now, in this process (never scheduled ahead)
        return
    with _schedule_lock:
        if now < _scheduled_until:
            return
        _scheduled_until = now + UPDATE_DELAY_S
    try:
        update_pending_tiles_task.apply_async(countdown=UPDATE_DELAY_S)
    except Exception:
        with _schedule_lock:
            _scheduled_until = 0.0
        log.exception("the consensus update of pending tiles was not enqueued; the periodic sweep will do it")


def update_pending_tiles(*, batch: int = BATCH, max_batches: int = MAX_BATCHES) -> tuple[int, bool]:
    """Re-score pending tiles, a batch per transaction; returns (tiles updated, whether some are left)."""
    done = 0
    for _ in range(max_batches):
        updated, full = _update_batch(batch)
        done += updated
        if not full:
            return done, False
    return done, True


def _update_batch(batch: int) -> tuple[int, bool]:
    """One batch: (tiles updated, whether the batch was full). Tiles a vote holds locked wait for the next."""
    table = PendingTileUpdate._meta.db_table
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"SELECT tile_id FROM {table} ORDER BY since, tile_id LIMIT %s", [batch])
        candidates = [row[0] for row in cursor.fetchall()]
        if not candidates:
            return 0, False
        # The tiles are locked first, as a vote locks its tile before its pending row; one a vote holds is
        # skipped, stays pending, and the vote asks for the next update after it commits.
        locked = list(update_tiles(tile_ids=candidates, skip_locked=True))
        if locked:
            ids = placeholders(locked)
            cursor.execute(f"DELETE FROM {table} WHERE tile_id IN ({ids})", locked)
            # The vote counts, recounted from the votes (they are kept by each vote; this repairs any drift).
            cursor.execute(f"""UPDATE imagery_tile SET vote_count = (
                                   SELECT COUNT(*) FROM tagging_classification c
                                   WHERE c.tile_id = imagery_tile.id AND NOT c.too_fast)
                               WHERE id IN ({ids})""", locked)
        return len(locked), bool(locked) and len(candidates) == batch
