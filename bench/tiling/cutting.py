"""Timing our tiler against the plain rasterio + Pillow ceiling, chunk by chunk, in a process pool.

No Django: these functions take a `Job` (plain values) and a chunk plan, so they run in the
pool's worker processes. Each returns its own timings; the caller measures wall time.
"""

import io
import multiprocessing
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import rasterio
from PIL import Image
from rasterio.windows import Window

from imagery.grid import ChunkPlan, GridSpec, chunk_pixel_window, plan_chunks
from imagery.tiling import Display, cut_chunk

RGB = Display(bands=(1, 2, 3), alpha=None, stretch=None)  # what ingest chooses for an RGB uint8 file


def pillow_options(fmt: str, quality: int, *, method: int = 2) -> dict:
    """Pillow save options; the defaults are those of imagery.tiling.encode_image (checked by the run)."""
    if fmt == "webp":
        return {"format": "WEBP", "quality": quality, "method": method}
    if fmt == "jpeg":
        return {"format": "JPEG", "quality": quality, "optimize": False}
    raise ValueError(f"no ceiling encoder for {fmt}")


@dataclass(frozen=True)
class Job:
    path: str
    spec: GridSpec
    fmt: str
    quality: int
    out_dir: str | None = None  # tiles written here (like FileSystemStorage) when set


@dataclass
class Times:
    """Per-process seconds and counts, summed over chunks."""

    chunks: int = 0
    tiles: int = 0
    tile_bytes: int = 0
    read_s: float = 0.0  # ceiling: open + read of the window
    encode_s: float = 0.0  # ceiling: array to image + encode
    cut_s: float = 0.0  # tiler: cut_chunk (read, mask, encode)
    write_s: float = 0.0  # tiler: writing the tile files
    cpu_s: float = 0.0  # CPU time of the worker process on these chunks

    def add(self, other: "Times") -> None:
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(self, name) + getattr(other, name))


@dataclass
class Pass:
    """One pass over every chunk: wall time and the summed per-process times."""

    processes: int
    wall_s: float
    times: Times = field(default_factory=Times)
    machine_cpu_s: float = 0.0  # CPU time of the whole machine during the pass

    def mpx_s(self, source_mpx: float) -> float:
        return source_mpx / self.wall_s

    @property
    def foreign_cpu_s(self) -> float:
        """CPU time that other processes took during the pass (a busy machine skews the figures)."""
        return max(0.0, self.machine_cpu_s - self.times.cpu_s)


def grid_for(path: Path, *, tile_size: int = 512, overlap: int = 64) -> GridSpec:
    """The grid ingest makes from a metric, north-up file: its own pixels (imagery.ingest.compute_grid_spec)."""
    with rasterio.open(path) as src:
        left, _, _, top = src.bounds
        return GridSpec(f"EPSG:{src.crs.to_epsg()}", left, top, src.res[0], src.width, src.height,
                        tile_size, overlap)


def chunks_for(spec: GridSpec, cells_per_side: int) -> list[ChunkPlan]:
    """The chunk plans prepare_layer makes for a layer covering the whole grid."""
    cols, rows = spec.cells_touching((spec.origin_x, spec.origin_y - spec.height * spec.pixel_size,
                                      spec.origin_x + spec.width * spec.pixel_size, spec.origin_y))
    return plan_chunks(cols=cols, rows=rows, cells_per_side=cells_per_side)


def tiler_chunk(job: Job, plan: ChunkPlan) -> Times:
    """Our tiler on one chunk, as imagery.jobs.run_chunk calls it, then its tile files written."""
    cpu = time.process_time()
    started = time.perf_counter()
    result = cut_chunk(paths=[job.path], spec=job.spec, display=RGB, chunk=plan, fmt=job.fmt,
                       quality=job.quality)
    cut = time.perf_counter()
    if job.out_dir:
        for tile in result.tiles:  # what FileSystemStorage.save does for tiles/<col>/<row>.<fmt>
            folder = os.path.join(job.out_dir, str(tile.col))
            os.makedirs(folder, exist_ok=True)
            with open(os.path.join(folder, f"{tile.row}.{job.fmt}"), "wb") as out:
                out.write(tile.data)
    done = time.perf_counter()
    return Times(chunks=1, tiles=len(result.tiles), tile_bytes=sum(len(t.data) for t in result.tiles),
                 cut_s=cut - started, write_s=done - cut, cpu_s=time.process_time() - cpu)


def ceiling_chunk(job: Job, plan: ChunkPlan) -> Times:
    """The least work that makes the same tiles: one rasterio read of the chunk's window, one
    Pillow encode per cell with the product's options, and nothing else: no validity mask,
    no zero-filled canvas (edge cells are padded alone), no files written.

    read_s is the open plus the windowed read. GDAL decodes every 512 px block the window
    touches, exactly as for the tiler, and writes the pixels band-interleaved, (h, w, bands),
    which is the layout Pillow takes, straight into the buffer. encode_s is Image.fromarray
    on each cell's view of that buffer (Pillow copies the rows) plus the encode. Each chunk
    opens the file afresh, as a stateless worker task must.
    """
    x_off, y_off, width, height = chunk_pixel_window(job.spec, plan)
    options = pillow_options(job.fmt, job.quality)
    cpu = time.process_time()
    started = time.perf_counter()
    with rasterio.open(job.path) as src:
        window = Window(x_off, y_off, min(width, src.width - x_off), min(height, src.height - y_off))
        data = np.empty((window.height, window.width, src.count), dtype=np.uint8)
        src.read(window=window, out=data.transpose(2, 0, 1))  # a view: GDAL fills data in (h, w, bands)
    read = time.perf_counter()
    times = Times(chunks=1, read_s=read - started)
    size = job.spec.tile_size
    for col in range(plan.col_start, plan.col_stop):
        for row in range(plan.row_start, plan.row_stop):
            cx, cy, _, _ = job.spec.cell_window(col, row)
            cell = data[cy - y_off:cy - y_off + size, cx - x_off:cx - x_off + size]
            if cell.shape[:2] != (size, size):
                cell = np.pad(cell, ((0, size - cell.shape[0]), (0, size - cell.shape[1]), (0, 0)))
            encoded = encode_interleaved(cell, options)
            times.tiles += 1
            times.tile_bytes += len(encoded)
    times.encode_s = time.perf_counter() - read
    times.cpu_s = time.process_time() - cpu
    return times


def encode_interleaved(pixels: np.ndarray, options: dict) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, **options)
    return buffer.getvalue()


def run_pass(work: Callable[[Job, ChunkPlan], Times], job: Job, plans: Sequence[ChunkPlan],
             processes: int) -> Pass:
    """Every chunk through ``work`` in a pool of ``processes``; wall time excludes starting the pool."""
    context = multiprocessing.get_context("spawn")  # no GDAL state inherited through fork
    with context.Pool(processes) as pool:
        pool.map(_warm_up, [job.path] * processes, chunksize=1)
        busy, started = machine_cpu_s(), time.perf_counter()
        results = pool.starmap(work, [(job, plan) for plan in plans], chunksize=1)
        result = Pass(processes, time.perf_counter() - started, machine_cpu_s=machine_cpu_s() - busy)
    for times in results:
        result.times.add(times)
    return result


def machine_cpu_s() -> float:
    """Seconds of CPU the machine has spent busy since boot, all processes (Linux /proc/stat)."""
    try:
        with open("/proc/stat") as stat:
            fields = [int(v) for v in stat.readline().split()[1:]]
    except OSError:
        return 0.0
    idle = fields[3] + fields[4]  # idle, iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def _warm_up(path: str) -> None:
    # Imports done and the file's header read once, so the timed pass measures steady work.
    with rasterio.open(path) as src:
        src.read(1, window=Window(0, 0, 1, 1))
    encode_interleaved(np.zeros((8, 8, 3), dtype=np.uint8), pillow_options("webp", 80))
