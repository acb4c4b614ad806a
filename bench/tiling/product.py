"""The whole ingest through the product's own commands and a real worker, and gdal2tiles.

Both run as subprocesses and are timed by wall clock. The ingest gets a fresh DATA_DIR with
the embedded default (SQLite, kombu's filesystem broker), whatever this shell's environment
says, so a run never touches anyone's data or servers.
"""

import math
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import rasterio
from rasterio.warp import calculate_default_transform

REPO = Path(__file__).resolve().parents[2]
PRODUCTION_VARIABLES = ("DATABASE_URL", "CELERY_BROKER_URL", "TILE_BUCKET", "IMAGERY_ROOT",
                        "CELERY_TASK_ALWAYS_EAGER", "S3_ENDPOINT_URL")
WORKER_READY = re.compile(r"celery@\S+ ready\.")
TASK_DONE = re.compile(r"^\[([\d-]+ [\d:,]+): [^\]]*\] Task (workers\.imagery\.\w+)\[[^\]]+\] "
                       r"succeeded in ([\d.]+)s", re.MULTILINE)


@dataclass(frozen=True)
class Ingest:
    wall_s: float  # ingest_imagery --wait, from start to ready
    status: str
    tiles: int
    before_s: float  # command start to the start of prepare_layer: start-up, staging copy, validation
    tiling_s: float  # start of prepare_layer to the end of the last chunk task
    prepare_s: float  # the worker's prepare_layer task
    chunk_tasks: int
    chunk_task_s: float  # the worker's cut_chunk tasks, summed over its processes
    worker_stop_s: float

    @property
    def after_s(self) -> float:
        """The last chunk's end to the command's exit: --wait's polling and exit."""
        return self.wall_s - self.before_s - self.tiling_s


def ingest(path: Path, *, fmt: str, quality: int, chunk_cells: int, work_dir: Path, processes: int = 2) -> Ingest:
    """migrate, create_project, then ingest_imagery --wait with a `celery worker` beside it."""
    data_dir = work_dir / "data"
    env = {k: v for k, v in os.environ.items() if k not in PRODUCTION_VARIABLES}
    env.update(DATA_DIR=str(data_dir), TILE_FORMAT=fmt, TILE_QUALITY=str(quality), LOG_LEVEL="INFO",
               TILING_CHUNK_CELLS=str(chunk_cells),
               DJANGO_SETTINGS_MODULE="config.settings", PYTHONUNBUFFERED="1")
    _manage(env, "migrate", "--noinput")
    _manage(env, "create_project", "bench", "--name", "Tiling benchmark", "--tile-size", "512",
            "--overlap", "64")
    log_path = work_dir / "worker.log"
    with open(log_path, "w") as log:
        worker = subprocess.Popen([sys.executable, "-m", "celery", "-A", "config", "worker",
                                   f"--concurrency={processes}", "--loglevel=INFO"],
                                  cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        _wait_for(log_path, WORKER_READY, worker, timeout=120)
        clock = datetime.now()  # the worker's log has local wall-clock times
        started = time.perf_counter()
        output = _manage(env, "ingest_imagery", "bench", str(path), "--date", "2024-06-01", "--wait",
                         "--timeout", "3600")
        wall = time.perf_counter() - started
    finally:
        stop_s = _stop(worker)
    final = re.search(r"Layer \d+: (\w+), (\d+) tiles\.", output)
    if not final:
        raise RuntimeError(f"ingest_imagery said:\n{output}")
    tasks = [(datetime.strptime(end, "%Y-%m-%d %H:%M:%S,%f"), name.rsplit(".", 1)[1], float(s))
             for end, name, s in TASK_DONE.findall(log_path.read_text())]
    prepare = [(end, s) for end, name, s in tasks if name == "prepare_layer"]
    chunks = [(end, s) for end, name, s in tasks if name == "cut_chunk"]
    if not prepare or not chunks:
        raise RuntimeError(f"no task timings in the worker's log:\n{log_path.read_text()[-3000:]}")
    first = prepare[0][0] - timedelta(seconds=prepare[0][1])
    last = max(end for end, _ in chunks)
    return Ingest(wall, final.group(1), int(final.group(2)), (first - clock).total_seconds(),
                  (last - first).total_seconds(), prepare[0][1], len(chunks), sum(s for _, s in chunks), stop_s)


def _manage(env: dict, *args: str) -> str:
    done = subprocess.run([sys.executable, "manage.py", *args], cwd=REPO, env=env, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"manage.py {' '.join(args)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return done.stdout


def _wait_for(log_path: Path, pattern: re.Pattern, process: subprocess.Popen, *, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not pattern.search(log_path.read_text()):
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"the worker did not start:\n{log_path.read_text()[-3000:]}")
        time.sleep(0.2)


def _stop(worker: subprocess.Popen) -> float:
    """Warm shutdown (SIGTERM to the worker we started); its process group only if it hangs."""
    started = time.perf_counter()
    if worker.poll() is None:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait()
    return time.perf_counter() - started


@dataclass(frozen=True)
class Gdal2Tiles:
    wall_s: float
    zoom: int
    tiles: int
    tile_bytes: int
    output_px_per_source_px: float  # pixels of the zoom's tiles over the source, from resolution


def gdal2tiles_command() -> str | None:
    return shutil.which("gdal2tiles") or shutil.which("gdal2tiles.py")


def ensure_gdal2tiles() -> str | None:
    """gdal2tiles on PATH, installing Debian's gdal-bin when missing and running as root."""
    found = gdal2tiles_command()
    if found or os.geteuid() != 0 or not shutil.which("apt-get"):
        return found
    print("installing gdal-bin for gdal2tiles (apt-get) ...", file=sys.stderr)
    apt_env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for args in (["apt-get", "update", "-q"], ["apt-get", "install", "-y", "-q", "gdal-bin"]):
        if subprocess.run(args, env=apt_env, capture_output=True).returncode:
            return None
    return gdal2tiles_command()


def native_zoom(path: Path) -> tuple[int, float]:
    """The web-mercator zoom (256 px tiles) nearest the source's resolution, and the ratio of
    that zoom's pixels to the source's (above 1: gdal2tiles upsamples a little)."""
    with rasterio.open(path) as src:
        transform, _, _ = calculate_default_transform(src.crs, "EPSG:3857", src.width, src.height, *src.bounds)
    mercator_px = transform.a
    zoom0 = 2 * math.pi * 6378137 / 256
    zoom = round(math.log2(zoom0 / mercator_px))
    return zoom, (mercator_px / (zoom0 / 2 ** zoom)) ** 2


def run_gdal2tiles(command: str, path: Path, *, quality: int, work_dir: Path, processes: int = 2) -> Gdal2Tiles:
    zoom, ratio = native_zoom(path)
    out = work_dir / "gdal2tiles"
    args = [command, f"--processes={processes}", "--tiledriver=WEBP", f"--webp-quality={quality}",
            "-z", str(zoom), "-w", "none", "-q", str(path), str(out)]
    started = time.perf_counter()
    done = subprocess.run(args, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if done.returncode:
        raise RuntimeError(f"{' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    files = [f for f in out.rglob("*.webp")]
    size = sum(f.stat().st_size for f in files)
    shutil.rmtree(out)
    return Gdal2Tiles(wall, zoom, len(files), size, ratio)
