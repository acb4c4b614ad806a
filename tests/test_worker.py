"""A real Celery worker process, on the broker the environment names (the embedded filesystem
broker by default; Redis when CELERY_BROKER_URL says so, as in CI's second run)."""

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.db import connection

from imagery.models import ImageryLayer, Tile, TileImage
from tests.imagery.helpers import make_project
from tests.rasters import write_geotiff

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]
ROOT = Path(__file__).resolve().parent.parent


def database_url() -> str:
    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    return f"postgres://{db['USER']}:{db['PASSWORD']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"


@pytest.fixture
def platform_env(tmp_path: Path) -> dict[str, str]:
    """The environment of the platform's processes: this test's files and database."""
    return {**os.environ, "DATA_DIR": str(tmp_path), "DATABASE_URL": database_url(), "SECRET_KEY": "test",
            "TILING_STALE_SECONDS": "2", "SWEEP_SECONDS": "1", "TILING_CHUNK_CELLS": "1",
            "PYTHONUNBUFFERED": "1"}


class Worker:
    def __init__(self, env: dict[str, str], log: Path):
        self.log = log.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "config", "worker", "--beat", "--concurrency=2",
             "--loglevel=INFO", f"--schedule={env['DATA_DIR']}/beat-schedule", "--without-mingle",
             "--without-gossip"],
            cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)

    def kill(self) -> None:
        """As a machine dying would: no warm shutdown, in-flight tasks lost."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        # Nothing is left to keep at teardown, and a warm shutdown takes 5-20 s on this broker.
        if self.process.poll() is None:
            self.kill()
        self.log.close()


@pytest.fixture
def start_worker(platform_env: dict[str, str], tmp_path: Path) -> Iterator:  # type: ignore[type-arg]
    workers: list[Worker] = []

    def start() -> Worker:
        workers.append(Worker(platform_env, tmp_path / "worker.log"))
        return workers[-1]

    yield start
    for worker in workers:
        worker.stop()


def manage(env: dict[str, str], *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout)


def wait_for(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def test_a_worker_process_tiles_what_the_command_ingests(platform_env, start_worker, tmp_path) -> None:
    make_project()
    source = write_geotiff(tmp_path / "s.tif", width=1400, height=1000)
    start_worker()
    result = manage(platform_env, "ingest_imagery", "raqqa", str(source), "--date", "2017-06-01", "--wait",
                    "--timeout", "90")
    log = (tmp_path / "worker.log").read_text()
    assert result.returncode == 0, result.stderr + log
    layer = ImageryLayer.objects.get()
    assert f"Layer {layer.pk}: ready, 9 tiles." in result.stdout
    assert (layer.status, layer.tile_count, TileImage.objects.filter(layer=layer).count()) == ("ready", 9, 9)
    assert "workers.imagery.cut_chunk" in log


def test_a_killed_worker_loses_nothing_and_duplicates_nothing(platform_env, start_worker, tmp_path) -> None:
    make_project()
    source = write_geotiff(tmp_path / "big.tif", width=4000, height=4000, tiled=True, blockxsize=512,
                           blockysize=512, compress="deflate")
    first = start_worker()
    result = manage(platform_env, "ingest_imagery", "raqqa", str(source), "--date", "2017-06-01")
    assert result.returncode == 0, result.stderr
    layer = ImageryLayer.objects.get()
    wait_for(lambda: ImageryLayer.objects.get(pk=layer.pk).tiles_done > 0, 90, "the first tiles")
    first.kill()
    layer.refresh_from_db()
    assert layer.status == "tiling" and layer.tiles_done < layer.tiles_total, "killed too late to prove anything"
    start_worker()  # its beat sweeps up the chunks the dead worker held
    wait_for(lambda: ImageryLayer.objects.get(pk=layer.pk).status in {"ready", "failed"}, 120, "the layer")
    layer.refresh_from_db()
    cells = 9 * 9  # 4000 px: ceil((4000 - 512) / 448) + 1 = 9 cells a side
    assert (layer.status, layer.tiles_total, layer.tiles_done, layer.tile_count) == ("ready", cells, cells, cells)
    assert Tile.objects.count() == cells
    assert TileImage.objects.filter(layer=layer).count() == cells
    assert sorted(Tile.objects.values_list("col", "row")) == [(c, r) for c in range(9) for r in range(9)]
    stored = list((tmp_path / "media" / "tiles").rglob("*.webp"))
    assert len(stored) == cells
