"""Time the worker's per-vote consensus update against a real database, as the worker runs it.

    python -m bench.consensus.db                # the embedded default: SQLite in a temporary directory
    python -m bench.consensus.db --postgres     # a private PostgreSQL database on 127.0.0.1 (dropped first)

A simulated crowd (20,000 tiles, about 100,000 votes and 50,000 marks by
default) is written to the database through the test suite's loader, one full
consensus run fits the label model (`recompute_project`), then
`tagging.consensus_store.update_tile` re-scores random voted tiles one call at
a time: the tile's row lock, its votes, the model (cached per process after
the first call), the scoring and the write, each call its own transaction.
That is all a worker does for one new vote. Then the same tiles in batches
of BATCH (`update_tiles`, as the worker takes pending tiles,
tagging.tile_updates): the cost per tile. Next to them, in the same run on
the same database: a primary-key SELECT of one tile through the ORM, the
cheapest query a request makes. The last line is machine-readable.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

PG_DATABASE = "bench_consensus_db"
BATCH = 50  # tiles per update_tiles call: about what half a second of votes marks pending at saturation


def main() -> None:
    args = _arguments()
    with tempfile.TemporaryDirectory(prefix="bench-consensus-db-") as data_dir:
        _configure(args, Path(data_dir))
        import django

        django.setup()
        _run(args)


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.consensus.db", description=__doc__.splitlines()[0])
    parser.add_argument("--postgres", action="store_true", help=f"PostgreSQL database {PG_DATABASE} on 127.0.0.1")
    parser.add_argument("--cols", type=int, default=200, help="crowd tiles across (times --rows tiles)")
    parser.add_argument("--rows", type=int, default=100)
    parser.add_argument("--volunteers", type=int, default=1_000)
    parser.add_argument("--updates", type=int, default=2_000, help="update_tile calls timed")
    parser.add_argument("--seed", type=int, default=1)
    return parser.parse_args()


def _configure(args: argparse.Namespace, data_dir: Path) -> None:
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings"
    os.environ["DATA_DIR"] = str(data_dir)
    os.environ["LOG_LEVEL"] = "WARNING"
    os.environ.pop("DATABASE_URL", None)
    if args.postgres:
        from bench.volunteers.services import PG, recreate_database

        recreate_database(PG_DATABASE)
        os.environ["DATABASE_URL"] = f"{PG}/{PG_DATABASE}"
        os.environ.setdefault("SECRET_KEY", "bench-consensus-db-only-not-a-secret")


def _run(args: argparse.Namespace) -> None:
    from django.core.management import call_command
    from django.db import connection

    from imagery.models import Tile
    from tagging.consensus.simulate import CrowdSpec
    from tagging.consensus_store import recompute_project, update_tile, update_tiles
    from tests.consensus.crowd_db import crowd_project

    call_command("migrate", verbosity=0, interactive=False)
    started = time.perf_counter()
    made = crowd_project(CrowdSpec(seed=args.seed, n_cols=args.cols, n_rows=args.rows,
                                   n_volunteers=args.volunteers, gold_rate=0.05), slug="bench")
    load_s = time.perf_counter() - started
    started = time.perf_counter()
    run = recompute_project(project_id=made.project.pk)
    run_s = time.perf_counter() - started
    crowd = made.crowd
    print(f"database: {connection.vendor} {_server_version(connection)}")
    print(f"crowd: {len(crowd.vote_tile):,} votes and {len(crowd.click_cls):,} marks on {crowd.n_tiles:,} tiles by "
          f"{crowd.n_volunteers:,} volunteers; written in {load_s:.1f} s; full consensus run {run_s:.1f} s "
          f"(run {run.pk}, {run.status})")
    voted = made.tile_ids[np.bincount(crowd.vote_tile, minlength=crowd.n_tiles) > 0]
    tiles = np.random.default_rng(args.seed).choice(voted, args.updates).tolist()
    update_tile(tile_id=tiles[0])  # loads the run's model into this process, as a worker's first update does
    update_ms = _timed_ms(tiles, lambda tile: update_tile(tile_id=tile))
    batches = [tiles[start:start + BATCH] for start in range(0, len(tiles), BATCH)]
    batch_ms = _timed_ms(batches, lambda batch: update_tiles(tile_ids=batch)).sum() / len(tiles)
    select_ms = _timed_ms(tiles, lambda tile: Tile.objects.filter(pk=tile).values_list("status").first())
    u50, u99, s50 = np.percentile(update_ms, 50), np.percentile(update_ms, 99), np.percentile(select_ms, 50)
    print(f"per-vote update (update_tile), {args.updates:,} calls: mean {update_ms.mean():.2f} ms, p50 {u50:.2f} ms, "
          f"p99 {u99:.2f} ms; one-row SELECT by primary key: p50 {s50:.3f} ms; update / SELECT {u50 / s50:.1f}x")
    print(f"in batches of {BATCH} (update_tiles): {batch_ms:.3f} ms per tile, {update_ms.mean() / batch_ms:.1f}x less "
          f"than one call per tile")
    print(f"vendor={connection.vendor} update_mean_ms={update_ms.mean():.3f} update_p50_ms={u50:.3f} "
          f"update_p99_ms={u99:.3f} batch_ms_per_tile={batch_ms:.3f} select_p50_ms={s50:.3f} ratio={u50 / s50:.1f}")


def _server_version(connection: Any) -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT sqlite_version()" if connection.vendor == "sqlite" else "SHOW server_version")
        return str(cursor.fetchone()[0])


def _timed_ms(tiles: list[Any], call: Callable[[Any], object]) -> np.ndarray:
    took = np.empty(len(tiles))
    for i, tile in enumerate(tiles):
        started = time.perf_counter()
        call(tile)
        took[i] = time.perf_counter() - started
    return took * 1000


if __name__ == "__main__":
    main()
