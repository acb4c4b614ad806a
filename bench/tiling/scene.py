"""A large generated aerial scene for the tiling benchmark, written block by block.

WebP and JPEG sizes and speeds on pure noise mean nothing, so the scene has what 0.5 m
imagery of a town has: city blocks with roads, buildings with shadows, a few rubble
fields, gardens, smooth variation of light and ground, and sensor noise. It is made from
value noise on coarse lattices and per-parcel random draws, all functions of the global
pixel position, so any window can be made alone and the file is written one strip of
512 x 4096 px at a time (a few tens of MB of memory at any size).

Calibrated against real imagery in ../shared/data/joplin-2011: there a 512 px tile is
35-75 KB as WebP q80 (method 2), here about the same.
"""

import multiprocessing
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
import rasterio.io
from rasterio.transform import from_origin
from rasterio.windows import Window

CRS = "EPSG:32637"  # UTM 37N, as the product's demo scene
ORIGIN = (500_400.0, 3_979_000.0)  # top-left corner, metres
PIXEL_SIZE = 0.5
BLOCK = 512  # internal tiling of the file, and the height of a strip
STRIP_WIDTH = 4096

CITY_BLOCK = 324  # px: a road of ROAD px, then PARCELS parcels of PARCEL px, each way
ROAD = 24
PARCEL = 60
PARCELS = 5

ROOFS = np.float32([[204, 201, 193], [188, 184, 176], [214, 201, 174], [200, 186, 158],
                    [222, 216, 204], [176, 168, 156], [172, 122, 96], [150, 150, 152]])
GROUND = np.float32([168, 152, 128])
GREEN = np.float32([74, 96, 52])
ASPHALT = np.float32([92, 92, 96])
RUBBLE = np.float32([150, 140, 124])


@dataclass(frozen=True)
class Parcels:
    """One random draw per parcel of the whole scene: does it hold a building, where, what roof."""

    kind: np.ndarray  # 0 garden, 1 building, 2 rubble
    top: np.ndarray
    bottom: np.ndarray
    left: np.ndarray
    right: np.ndarray
    roof: np.ndarray  # (n, n, 3) float32 colour

    @classmethod
    def draw(cls, rng: np.random.Generator, count: int) -> "Parcels":
        shape = (count, count)
        kind = rng.choice(3, size=shape, p=[0.18, 0.76, 0.06]).astype(np.int8)
        insets = [rng.integers(3, 16, size=shape, dtype=np.int16) for _ in range(4)]
        roof = ROOFS[rng.integers(0, len(ROOFS), size=shape)] * rng.uniform(0.9, 1.08, size=shape + (1,))
        return cls(kind, *insets, roof.astype(np.float32))


class Scene:
    """Pixels of an N x N scene at any window; deterministic for a seed."""

    def __init__(self, size: int, seed: int = 11) -> None:
        self.size = size
        rng = np.random.default_rng(seed)
        # Value-noise lattices: light and ground (coarse), patches (medium), surface detail (fine).
        self.lattices = {spacing: rng.standard_normal((size // spacing + 3,) * 2).astype(np.float32)
                         for spacing in (1024, 96, 12, 4)}
        self.parcels = Parcels.draw(rng, size // CITY_BLOCK * PARCELS + PARCELS)
        # Sensor noise is drawn from one bank at random offsets: a fifth of the cost of fresh draws.
        self.grain = rng.standard_normal(3 * BLOCK * STRIP_WIDTH, dtype=np.float32)
        self.seed = seed

    def window(self, x0: int, y0: int, width: int, height: int) -> np.ndarray:
        """(3, height, width) uint8 pixels of the scene at (x0, y0)."""
        ys, xs = np.arange(y0, y0 + height), np.arange(x0, x0 + width)
        light = self._noise(1024, ys, xs)
        patches = self._noise(96, ys, xs)
        detail = self._noise(12, ys, xs) + 0.8 * self._noise(4, ys, xs)
        py, ly, road_y = _parcel_axis(ys)
        px, lx, road_x = _parcel_axis(xs)
        road = road_y[:, None] | road_x[None, :]
        cells = py[:, None] * self.parcels.kind.shape[1] + px[None, :]
        kind = self.parcels.kind.ravel()[cells]
        inside, cast = self._footprints(cells, ly, lx, road)
        building, rubble = inside & (kind == 1), inside & (kind == 2)
        garden = np.clip(0.5 + 0.6 * patches, 0, 1) * ((kind == 0) & ~road)
        shade = np.where(cast & (kind >= 1), np.float32(0.55), np.float32(1.0))
        rng = np.random.default_rng((self.seed, x0, y0))
        grain = 4.0 * self._grain(rng, height, width)  # sensor noise, grey
        if rubble.any():
            debris = (1 + 0.25 * self._noise(12, ys + 5, xs + 7)) + 0.12 * self._grain(rng, height, width)
        ground = 1 + 0.08 * light + 0.05 * patches
        texture = 7 * detail
        out = np.empty((3, height, width), dtype=np.float32)
        for band, plane in enumerate(out):
            np.multiply(ground, GROUND[band], out=plane)
            plane += texture
            plane += (GREEN[band] - plane) * garden
            np.copyto(plane, ASPHALT[band] * (1 + 0.04 * light) + 0.5 * texture, where=road)
            roof = self.parcels.roof[..., band].ravel()[cells]
            np.copyto(plane, roof * (1 + 0.006 * texture), where=building)
            if rubble.any():
                np.copyto(plane, RUBBLE[band] * debris, where=rubble)
            plane *= shade
            plane += grain
            plane += 1.5 * self._grain(rng, height, width)
        np.clip(out, 0, 255, out=out)
        return out.astype(np.uint8)

    def _grain(self, rng: np.random.Generator, height: int, width: int) -> np.ndarray:
        start = int(rng.integers(0, self.grain.size - height * width + 1))
        return self.grain[start:start + height * width].reshape(height, width)

    def _noise(self, spacing: int, ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
        """Smoothly interpolated lattice values at the pixel centres (separable, so cheap)."""
        lattice = self.lattices[spacing]
        iy, fy = _cell(ys, spacing)
        ix, fx = _cell(xs, spacing)
        rows = lattice[iy] * (1 - fy)[:, None] + lattice[iy + 1] * fy[:, None]
        return rows[:, ix] * (1 - fx) + rows[:, ix + 1] * fx

    def _footprints(self, cells: np.ndarray, ly: np.ndarray, lx: np.ndarray,
                    road: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Where a parcel's building stands, and its shadow (sun from the north-west)."""
        p = self.parcels
        top, left = p.top.ravel()[cells], p.left.ravel()[cells]
        bottom, right = PARCEL - p.bottom.ravel()[cells], PARCEL - p.right.ravel()[cells]
        y, x = ly[:, None], lx[None, :]
        inside = (y >= top) & (y < bottom) & (x >= left) & (x < right) & ~road
        cast = (y >= top + 4) & (y < bottom + 4) & (x >= left + 5) & (x < right + 5) & ~road
        return inside, cast & ~inside


def _cell(values: np.ndarray, spacing: int) -> tuple[np.ndarray, np.ndarray]:
    position = (values + 0.5) / spacing
    index = position.astype(np.int64)
    frac = (position - index).astype(np.float32)
    return index, frac * frac * (3 - 2 * frac)


def _parcel_axis(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per pixel along one axis: global parcel index, position in the parcel, on a road."""
    block, local = np.divmod(values, CITY_BLOCK)
    road = local < ROAD
    within = np.maximum(local - ROAD, 0)
    return block * PARCELS + np.minimum(within // PARCEL, PARCELS - 1), within % PARCEL, road


def write_scene(path: Path, size: int, *, seed: int = 11, processes: int = 2) -> Path:
    """An N x N RGB uint8 GeoTIFF, DEFLATE, 512 px internal tiles, generated in parallel.

    At most a few strips are in flight at once, so memory stays small at any size.
    """
    profile = {"driver": "GTiff", "width": size, "height": size, "count": 3, "dtype": "uint8",
               "crs": CRS, "transform": from_origin(*ORIGIN, PIXEL_SIZE, PIXEL_SIZE),
               "compress": "deflate", "photometric": "rgb", "interleave": "pixel",
               "tiled": True, "blockxsize": BLOCK, "blockysize": BLOCK, "num_threads": "all_cpus"}
    windows = [(x0, y0, min(STRIP_WIDTH, size - x0), min(BLOCK, size - y0))
               for y0 in range(0, size, BLOCK) for x0 in range(0, size, STRIP_WIDTH)]
    context = multiprocessing.get_context("spawn")
    with context.Pool(processes, initializer=_start_generator, initargs=(size, seed)) as pool, \
            rasterio.open(path, "w", **profile) as dst:
        pending: deque = deque()
        for window in windows:
            pending.append((window, pool.apply_async(_generate, (window,))))
            if len(pending) > 2 * processes:
                _write_next(dst, pending)
        while pending:
            _write_next(dst, pending)
    return path


def _write_next(dst: rasterio.io.DatasetWriter, pending: deque) -> None:
    window, result = pending.popleft()
    dst.write(result.get(), window=Window(*window))


_scene: Scene | None = None


def _start_generator(size: int, seed: int) -> None:
    global _scene
    _scene = Scene(size, seed)


def _generate(window: tuple[int, int, int, int]) -> np.ndarray:
    # Made in pieces of 512 x 256 px: small enough for the CPU cache, which makes it twice as fast.
    assert _scene is not None
    x0, y0, width, height = window
    out = np.empty((3, height, width), dtype=np.uint8)
    for dy in range(0, height, 256):
        for dx in range(0, width, 512):
            piece = _scene.window(x0 + dx, y0 + dy, min(512, width - dx), min(256, height - dy))
            out[:, dy:dy + piece.shape[1], dx:dx + piece.shape[2]] = piece
    return out
