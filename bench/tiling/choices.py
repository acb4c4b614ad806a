"""Measurements behind two product choices: the tile format and its encoder settings, and
whether converting a striped upload to a tiled copy pays. One process, plain rasterio + Pillow.
"""

import io
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
import rasterio.shutil
from PIL import Image
from rasterio.windows import Window

from bench.tiling.cutting import RGB, encode_interleaved, pillow_options
from imagery.grid import ChunkPlan, GridSpec, chunk_pixel_window
from imagery.tiling import read_grid_window


@dataclass(frozen=True)
class Encoding:
    fmt: str
    quality: int
    method: int | None  # WebP only: 0 fastest .. 6 smallest
    bytes_per_tile: float
    ms_per_tile: float
    psnr_db: float

    @property
    def label(self) -> str:
        return f"{self.fmt} q{self.quality}" + (f" m{self.method}" if self.method is not None else "")


def sample_cells(spec: GridSpec, count: int = 24) -> list[tuple[int, int]]:
    """Whole cells spread evenly over the grid (no edge cells, which are part padding)."""
    side = max(1, round(count ** 0.5))
    last_col = max(0, (spec.width - spec.tile_size) // spec.stride)
    last_row = max(0, (spec.height - spec.tile_size) // spec.stride)
    cols = sorted(set(np.linspace(0, last_col, side).round().astype(int).tolist()))
    rows = sorted(set(np.linspace(0, last_row, side).round().astype(int).tolist()))
    return [(c, r) for r in rows for c in cols]


def compare_encodings(path: Path, spec: GridSpec, *, qualities: tuple[int, ...] = (80, 85),
                      methods: tuple[int, ...] = (0, 1, 2, 3, 4)) -> list[Encoding]:
    """Bytes, encode time and PSNR per tile of WebP (each method) and JPEG on sample cells.

    The time is the best of two rounds over all samples, per tile: Image.fromarray on an
    (h, w, bands) array plus the encode.
    """
    tiles = []
    with rasterio.open(path) as src:
        for col, row in sample_cells(spec):
            x, y, size, _ = spec.cell_window(col, row)
            tiles.append(np.ascontiguousarray(src.read(window=Window(x, y, size, size)).transpose(1, 2, 0)))
    settings = [(q, m) for q in qualities for m in methods]
    results = [_measure(tiles, "webp", q, m) for q, m in settings]
    results += [_measure(tiles, "jpeg", q, None) for q in qualities]
    return results


def _measure(tiles: list[np.ndarray], fmt: str, quality: int, method: int | None) -> Encoding:
    options = pillow_options(fmt, quality, method=method if method is not None else 2)
    encode_interleaved(tiles[0], options)  # warm up the encoder
    rounds = []
    for _ in range(2):
        started = time.perf_counter()
        encoded = [encode_interleaved(t, options) for t in tiles]
        rounds.append(time.perf_counter() - started)
    psnr = statistics.fmean(_psnr(t, data) for t, data in zip(tiles, encoded))
    return Encoding(fmt, quality, method, statistics.fmean(len(d) for d in encoded),
                    1000 * min(rounds) / len(tiles), psnr)


def _psnr(original: np.ndarray, data: bytes) -> float:
    decoded = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"), dtype=np.float32)
    mse = float(np.mean((decoded - original.astype(np.float32)) ** 2))
    return 10 * np.log10(255.0 ** 2 / max(mse, 1e-9))


@dataclass(frozen=True)
class Conversion:
    name: str
    convert_s: float
    megabytes: float
    read_s_per_chunk: float


@dataclass(frozen=True)
class Layouts:
    rows_per_strip: int
    chunks_timed: int
    chunks_total: int
    striped_s_per_chunk: float
    conversions: list[Conversion]

    @property
    def striped_total_s(self) -> float:
        return self.striped_s_per_chunk * self.chunks_total

    def converted_total_s(self, conversion: Conversion) -> float:
        return conversion.convert_s + conversion.read_s_per_chunk * self.chunks_total


def compare_layouts(tiled: Path, spec: GridSpec, plans: list[ChunkPlan], work_dir: Path) -> Layouts:
    """Reading every chunk's window from a striped copy of the file versus a tiled conversion.

    The striped copy is what many providers deliver (GDAL's default strips, DEFLATE). Reads go
    through the product's read_grid_window, which opens the file per chunk as a worker does.
    Times one row of chunks from the middle of the grid and scales by the number of chunks.
    The conversion is the product's (imagery.jobs._ensure_fast_reads): a plain GDAL copy to
    512 px tiles with ZSTD level 1 on all CPUs, a working copy made for fast reads. (A COG with
    DEFLATE through rio-cogeo, tried first, converted 4.5x slower and read 2.4x slower.)
    """
    striped = work_dir / "striped.tif"
    rasterio.shutil.copy(str(tiled), str(striped), driver="GTiff", compress="deflate", tiled=False,
                         num_threads="all_cpus")
    with rasterio.open(striped) as src:
        rows_per_strip = src.block_shapes[0][0]
    middle = plans[len(plans) // 2].row_start
    sample = [p for p in plans if p.row_start == middle]
    striped_s = _read_chunks(striped, spec, sample)
    conversions = [_convert(name, make, striped, work_dir / "converted.tif", spec, sample)
                   for name, make in (("product: GDAL copy, ZSTD 1", _product_conversion),)]
    striped.unlink()
    return Layouts(rows_per_strip, len(sample), len(plans), striped_s / len(sample), conversions)


def _product_conversion(source: Path, target: Path) -> None:
    # The same call as imagery.jobs._ensure_fast_reads.
    rasterio.shutil.copy(str(source), str(target), driver="GTiff", tiled=True, blockxsize=512, blockysize=512,
                         compress="zstd", zstd_level=1, num_threads="all_cpus", bigtiff="if_safer")


def _convert(name: str, make, source: Path, target: Path, spec: GridSpec, sample: list[ChunkPlan]) -> Conversion:
    started = time.perf_counter()
    make(source, target)
    convert_s = time.perf_counter() - started
    read_s = _read_chunks(target, spec, sample)
    size = target.stat().st_size / 1e6
    target.unlink()
    return Conversion(name, convert_s, size, read_s / len(sample))


def _read_chunks(path: Path, spec: GridSpec, plans: list[ChunkPlan]) -> float:
    read_grid_window(paths=[str(path)], spec=spec, display=RGB, window=(0, 0, 8, 8))  # warm up
    started = time.perf_counter()
    for plan in plans:
        read_grid_window(paths=[str(path)], spec=spec, display=RGB, window=chunk_pixel_window(spec, plan))
    return time.perf_counter() - started
