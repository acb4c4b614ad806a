"""python -m bench.tiling [--size N] [--format webp|jpeg]: what it measures is in bench/tiling/__init__.py."""

import argparse
import math
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import PIL
import rasterio
from PIL import features

from bench.tiling import choices, cutting, product, scene
from imagery.grid import ChunkPlan, GridSpec, chunk_pixel_window

PROCESSES = 2  # the figures on the last line are at this many processes
ROUNDS = 3  # passes at PROCESSES, tiler and ceiling alternating; the best of each counts
MAX_ROUNDS = 5  # more while other processes take over BUSY of the CPUs during a pass
BUSY = 0.1


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    from django.conf import settings  # read only: tile quality and chunk size as the product has them

    parser = argparse.ArgumentParser(prog="python -m bench.tiling", description=__doc__)
    parser.add_argument("--size", type=int, default=16384, help="side of the generated raster in px (%(default)s)")
    parser.add_argument("--format", choices=["webp", "jpeg"], default="webp",
                        help="tile format of our tiler, the ceiling and the ingest (%(default)s); "
                             "the comparison with gdal2tiles is always in WebP")
    parser.add_argument("--chunk-cells", type=int, default=settings.TILING_CHUNK_CELLS,
                        help="cells per chunk side, for the tiler and the ingest (TILING_CHUNK_CELLS: %(default)s)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-tiling-") as tmp:
        return run(Path(tmp), args.size, args.format, settings.TILE_QUALITY, args.chunk_cells)


def run(tmp: Path, size: int, fmt: str, quality: int, cells: int) -> int:
    mpx = size * size / 1e6
    print(f"bench.tiling: {size} x {size} px ({mpx:.1f} Mpx source), 3 x uint8, {fmt} q{quality}, "
          f"chunks of {cells} x {cells} cells, {os.cpu_count()} CPUs")
    print(f"  rasterio {rasterio.__version__} (GDAL {rasterio.__gdal_version__}), Pillow {PIL.__version__} "
          f"(libwebp {features.version('webp')}, libjpeg {features.version('jpg')}), numpy {np.__version__}")
    print(f"  machine before the run: {machine_busy():.0%} of the CPUs busy")

    source = tmp / "scene.tif"
    started = time.perf_counter()
    scene.write_scene(source, size)
    print(f"\nsource: generated in {time.perf_counter() - started:.1f} s, {source.stat().st_size / 1e6:.0f} MB "
          "(GeoTIFF, 512 px tiles, DEFLATE)")
    spec = cutting.grid_for(source)
    plans = cutting.chunks_for(spec, cells)
    print(f"grid: {spec.cols} x {spec.rows} = {spec.cols * spec.rows} cells of {spec.tile_size} px "
          f"(overlap {spec.overlap}), {len(plans)} chunks; GDAL decodes {overread(spec, plans):.2f} px per px of "
          f"chunk window ({chunk_pixel_window(spec, plans[0])[2]} px windows over 512 px blocks)")

    tiler, ceiling, webp_tiler = measure_tiler(source, spec, plans, fmt, quality, tmp, mpx)
    tiler_mpx_s, ceiling_mpx_s = tiler.mpx_s(mpx), ceiling.mpx_s(mpx)

    print(f"\n[3] the product's ingest: manage.py ingest_imagery --wait, celery worker --concurrency={PROCESSES}")
    result = product.ingest(source, fmt=fmt, quality=quality, chunk_cells=cells, work_dir=tmp / "ingest",
                            processes=PROCESSES)
    shutil.rmtree(tmp / "ingest", ignore_errors=True)
    ingest_mpx_s = mpx / result.wall_s
    print(f"  {ingest_mpx_s:.2f} Mpx/s: {result.wall_s:.1f} s from command to {result.status}, {result.tiles} tiles "
          f"(the tiler made {tiler.times.tiles})")
    print(f"  = {result.before_s:.1f} s before the worker starts (command start-up, staging copy + sha256, "
          f"validation, enqueue)\n  + {result.tiling_s:.1f} s in the worker: prepare {result.prepare_s:.1f} s, "
          f"{result.chunk_tasks} chunk tasks {result.chunk_task_s:.1f} s summed over {PROCESSES} processes "
          f"(the tiler alone: {tiler.times.cut_s + tiler.times.write_s:.1f} s), so "
          f"{result.tiling_s - result.prepare_s - result.chunk_task_s / PROCESSES:.1f} s idle between tasks\n"
          f"  + {result.after_s:.1f} s until the command returns (--wait polls every 0.2 s)"
          f"; worker warm shutdown {result.worker_stop_s:.1f} s (not counted)")

    print(f"\n[4] gdal2tiles --processes={PROCESSES} --tiledriver=WEBP --webp-quality={quality}, native zoom")
    gdal_mpx_s = math.nan
    command = product.ensure_gdal2tiles()
    if command is None:
        print("  gdal2tiles not found and not installable here: run `apt-get install -y gdal-bin` as root")
    else:
        g = product.run_gdal2tiles(command, source, quality=quality, work_dir=tmp, processes=PROCESSES)
        gdal_mpx_s = mpx / g.wall_s
        print(f"  {gdal_mpx_s:.2f} Mpx/s: {g.wall_s:.1f} s, zoom {g.zoom} ({g.output_px_per_source_px:.2f} output px "
              f"per source px), {g.tiles} tiles of 256 px, {g.tile_bytes / max(g.tiles, 1) / 1e3:.1f} KB per tile")

    print_choices(source, spec, plans, fmt, quality, tmp)

    ratio_ceiling = tiler_mpx_s / ceiling_mpx_s
    ratio_gdal = webp_tiler.mpx_s(mpx) / gdal_mpx_s
    print(f"\ntargets at {PROCESSES} processes: ratio_vs_ceiling {ratio_ceiling:.2f} (>= 0.9 "
          f"{verdict(ratio_ceiling >= 0.9)}), ingest/tiler {ingest_mpx_s / tiler_mpx_s:.2f} (>= 0.7 "
          f"{verdict(ingest_mpx_s >= 0.7 * tiler_mpx_s)}), ratio_vs_gdal2tiles {ratio_gdal:.2f} (>= 6 "
          f"{verdict(ratio_gdal >= 6)})")
    print(f"tiler_mpx_s={tiler_mpx_s:.2f} ceiling_mpx_s={ceiling_mpx_s:.2f} ingest_mpx_s={ingest_mpx_s:.2f} "
          f"gdal2tiles_mpx_s={gdal_mpx_s:.2f} ratio_vs_ceiling={ratio_ceiling:.2f} "
          f"ratio_vs_gdal2tiles={ratio_gdal:.2f}")
    return 0


def measure_tiler(source: Path, spec: GridSpec, plans: list[ChunkPlan], fmt: str, quality: int, tmp: Path,
                  mpx: float) -> tuple[cutting.Pass, cutting.Pass, cutting.Pass]:
    """[1] and [2]: once at 1 process, ROUNDS times alternating at PROCESSES; the best pass of each."""
    print(f"\n[1] our tiler (imagery.tiling.cut_chunk, tile files written) and [2] the ceiling (rasterio read + "
          f"Pillow encode, nothing written), {fmt}")
    job = cutting.Job(str(source), spec, fmt, quality)
    passes: dict[str, list[cutting.Pass]] = {"tiler": [], "ceiling": []}
    rounds = 0
    while rounds < 1 + ROUNDS or (rounds < 1 + MAX_ROUNDS and min(clean_passes(passes)) < ROUNDS):
        processes = 1 if rounds == 0 else PROCESSES
        passes["tiler"].append(tiler_pass(job, plans, processes, tmp))
        passes["ceiling"].append(cutting.run_pass(cutting.ceiling_chunk, job, plans, processes))
        rounds += 1
    for name, runs in passes.items():
        for p in runs:
            print_pass(name, p, mpx)
    tiler = max(passes["tiler"][1:], key=lambda p: p.mpx_s(mpx))
    ceiling = max(passes["ceiling"][1:], key=lambda p: p.mpx_s(mpx))
    t, c = tiler.times, ceiling.times
    print(f"  tiles: {t.tiles}, {t.tile_bytes / max(t.tiles, 1) / 1e3:.1f} KB per tile ({fmt} q{quality}); "
          f"the ceiling's {c.tile_bytes / max(c.tiles, 1) / 1e3:.1f} KB")
    if abs(t.tile_bytes - c.tile_bytes) > 0.01 * t.tile_bytes:
        print("  WARNING: the ceiling's tiles differ in size from the tiler's by over 1%: "
              "bench.tiling.cutting.pillow_options no longer matches imagery.tiling.encode_image")
    print(f"  best at {PROCESSES} processes: tiler {tiler.mpx_s(mpx):.2f} Mpx/s, "
          f"ceiling {ceiling.mpx_s(mpx):.2f} Mpx/s")
    webp_tiler = tiler
    if fmt != "webp":
        webp_tiler = tiler_pass(cutting.Job(str(source), spec, "webp", quality), plans, PROCESSES, tmp)
        print(f"  tiler in webp, for gdal2tiles, {PROCESSES} processes: {webp_tiler.mpx_s(mpx):.2f} Mpx/s")
    return tiler, ceiling, webp_tiler


def clean_passes(passes: dict[str, list[cutting.Pass]]) -> list[int]:
    """Per kind, the passes at PROCESSES during which other processes left the CPUs to us."""
    return [sum(1 for p in runs[1:] if foreign_share(p) <= BUSY) for runs in passes.values()]


def foreign_share(p: cutting.Pass) -> float:
    return p.foreign_cpu_s / (p.wall_s * (os.cpu_count() or 1))


def machine_busy(seconds: float = 2.0) -> float:
    before = cutting.machine_cpu_s()
    time.sleep(seconds)
    return (cutting.machine_cpu_s() - before) / (seconds * (os.cpu_count() or 1))


def print_pass(name: str, p: cutting.Pass, mpx: float) -> None:
    t = p.times
    if name == "tiler":
        parts = f"cut {t.cut_s:5.1f} s + write {t.write_s:4.1f} s"
    else:
        parts = f"read {t.read_s:5.1f} s + encode {t.encode_s:5.1f} s"
    busy = foreign_share(p)
    warning = f"; other processes took {busy:.0%} of the CPUs" if busy > BUSY / 2 else ""
    print(f"  {name:<8}{p.processes} process{'es' if p.processes > 1 else '  '}: {p.mpx_s(mpx):6.2f} Mpx/s, "
          f"{p.wall_s:5.1f} s wall ({parts} summed over processes){warning}")


def print_choices(source: Path, spec: GridSpec, plans: list[ChunkPlan], fmt: str, quality: int, tmp: Path) -> None:
    print("\n[5] tile formats on sample cells (1 process, Pillow, from (h, w, 3) arrays)")
    print(f"  {'encoding':<14}{'KB/tile':>9}{'ms/tile':>9}{'PSNR dB':>9}")
    for e in choices.compare_encodings(source, spec):
        product_setting = (e.fmt, e.quality, e.method) == (fmt, quality, 2 if fmt == "webp" else None)
        print(f"  {e.label:<14}{e.bytes_per_tile / 1e3:9.1f}{e.ms_per_tile:9.1f}{e.psnr_db:9.2f}"
              f"{'  <- product' if product_setting else ''}")

    print("\n[6] striped upload vs a tiled copy (read_grid_window per chunk, 1 process)")
    lay = choices.compare_layouts(source, spec, plans, tmp)
    print(f"  striped, {lay.rows_per_strip} row(s) per strip: {lay.striped_s_per_chunk * 1000:.0f} ms per chunk "
          f"({lay.chunks_timed} chunks timed); all {lay.chunks_total} chunks {lay.striped_total_s:.1f} s")
    for c in lay.conversions:
        total = lay.converted_total_s(c)
        print(f"  {c.name:<28} convert {c.convert_s:5.1f} s ({c.megabytes:.0f} MB), then "
              f"{c.read_s_per_chunk * 1000:.0f} ms per chunk: {total:.1f} s for all chunks, "
              f"{'pays' if total < lay.striped_total_s else 'does not pay'}")


def tiler_pass(job: cutting.Job, plans: list[ChunkPlan], processes: int, tmp: Path) -> cutting.Pass:
    out = tmp / f"tiles-{job.fmt}-{processes}"
    result = cutting.run_pass(cutting.tiler_chunk, cutting.Job(job.path, job.spec, job.fmt, job.quality, str(out)),
                              plans, processes)
    shutil.rmtree(out, ignore_errors=True)
    return result


def overread(spec: GridSpec, plans: list[ChunkPlan]) -> float:
    """Pixels GDAL decodes (whole 512 px blocks) per pixel of the chunk windows, inside the raster."""
    decoded = wanted = 0
    for plan in plans:
        x, y, w, h = chunk_pixel_window(spec, plan)
        x1, y1 = min(x + w, spec.width), min(y + h, spec.height)
        bx = min(math.ceil(x1 / 512) * 512, spec.width) - x // 512 * 512
        by = min(math.ceil(y1 / 512) * 512, spec.height) - y // 512 * 512
        decoded += bx * by
        wanted += (x1 - x) * (y1 - y)
    return decoded / wanted


def verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


if __name__ == "__main__":
    sys.exit(main())
