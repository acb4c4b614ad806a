"""A generated before/after aerial scene of a few city blocks, with known truth.

`make run` loads it as a demo project, and tests and benchmarks use it as
imagery whose destroyed buildings are known. Pure numpy, Pillow and rasterio:
no Django. Images are held as float (band, row, col) arrays until written.
"""

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from affine import Affine
from PIL import Image, ImageFilter
from pyproj import Transformer

CRS = "EPSG:32637"  # UTM 37N; Raqqa lies near the zone's central meridian
ORIGIN = (500_400.0, 3_979_000.0)  # top-left corner of the scene, ground metres

Rect = tuple[int, int, int, int]  # row0, col0, row1, col1 in pixels, ends exclusive
Px = Callable[[float], int]  # ground metres to a whole number of pixels
Rng = np.random.Generator
Trees = tuple[np.ndarray, np.ndarray, np.ndarray]

ROOF_COLOURS = np.float32([[204, 201, 193], [188, 184, 176], [214, 201, 174], [200, 186, 158],
                           [222, 216, 204], [176, 168, 156], [172, 122, 96]])
ROOF_ODDS = [0.2, 0.2, 0.19, 0.18, 0.1, 0.1, 0.03]  # mostly concrete, a few tiled roofs
TREE_COLOURS = np.float32([[66, 90, 46], [80, 102, 54], [94, 104, 60]])


@dataclass(frozen=True)
class Building:
    id: int
    x: float  # centre easting, ground metres in the scene CRS
    y: float  # centre northing
    width_m: float  # east-west extent of the footprint
    height_m: float  # north-south extent of the footprint, not elevation
    destroyed: bool  # destroyed in the "after" date


@dataclass(frozen=True)
class DemoScene:
    before: Path
    after: Path
    crs: str
    buildings: tuple[Building, ...]


def write_demo_scene(*, out_dir: Path, size_px: int = 2048, pixel_size_m: float = 0.5,
                     seed: int = 7, destroyed_fraction: float = 0.25) -> DemoScene:
    """Write `before.tif` and `after.tif` into out_dir and return their truth.

    Both are RGB uint8 GeoTIFFs (256 px tiles, DEFLATE, no nodata) on one pixel
    grid of size_px x size_px in EPSG:32637, so they line up pixel for pixel.
    Every building lies wholly inside the raster with its footprint on whole
    pixels; round(destroyed_fraction * n) of them (at least one when the
    fraction is positive) are rubble in the after date, and the rest look the
    same up to a mild change of light and sensor noise. The same arguments give
    byte-identical files. Both are written under temporary names and renamed
    once both are complete, replacing an earlier pair. A 256 px scene holds a few
    dozen buildings, a 2048 px one a few thousand. Raises ValueError on a size
    below 64 px, a pixel size that is not positive or a fraction outside [0, 1].
    """
    if size_px < 64 or pixel_size_m <= 0 or not 0 <= destroyed_fraction <= 1:
        raise ValueError("need size_px >= 64, pixel_size_m > 0 and 0 <= destroyed_fraction <= 1")
    px = _pixels(pixel_size_m)
    rng = np.random.default_rng(seed)
    road, walk, rects, storeys, parks = _layout(rng, size_px, pixel_size_m)
    count = round(destroyed_fraction * len(rects))
    count = min(len(rects), max(count, 1 if destroyed_fraction > 0 else 0))
    destroyed = set(rng.permutation(len(rects))[:count].tolist())
    trees = _tree_layer(rng, size_px, px, road | walk, rects, parks, seed)
    before, after = _render(rng, size_px, px, seed, road, walk, parks, rects, storeys, destroyed)

    out_dir.mkdir(parents=True, exist_ok=True)
    transform = Affine(pixel_size_m, 0, ORIGIN[0], 0, -pixel_size_m, ORIGIN[1])
    shade, leaves, canopy = trees
    paths = (out_dir / "before.tif", out_dir / "after.tif")
    partial = [path.with_name(f".{path.stem}.{os.getpid()}.partial.tif") for path in paths]
    try:
        # Two acquisitions: different light, haze and sensor noise over the same ground.
        for tmp, img, gain, haze, k in ((partial[0], before, (1.0, 1.0, 1.0), 0.0, 4),
                                        (partial[1], after, (1.03, 1.025, 1.01), 2.0, 5)):
            img *= shade
            img[:, canopy] = leaves[:, canopy]
            noise = np.random.default_rng((seed, k)).standard_normal(img.shape[1:], dtype=np.float32)
            bands = [np.clip(b * g + haze + 2.5 * noise, 0, 255).astype(np.uint8)
                     for b, g in zip(img, gain, strict=True)]
            # Optics soften edges; a crisp synthetic edge looks like a drawing, not a photo.
            soft = ImageFilter.Kernel((3, 3), [1, 2, 1, 2, 6, 2, 1, 2, 1])
            rgb = np.asarray(Image.fromarray(np.dstack(bands)).filter(soft))
            _write_geotiff(tmp, rgb.transpose(2, 0, 1), transform)
        for tmp, path in zip(partial, paths, strict=True):
            os.replace(tmp, path)
    finally:
        for tmp in partial:
            tmp.unlink(missing_ok=True)

    buildings = tuple(
        Building(id=i + 1, x=ORIGIN[0] + (c0 + c1) / 2 * pixel_size_m,
                 y=ORIGIN[1] - (r0 + r1) / 2 * pixel_size_m, width_m=(c1 - c0) * pixel_size_m,
                 height_m=(r1 - r0) * pixel_size_m, destroyed=i in destroyed)
        for i, (r0, c0, r1, c1) in enumerate(rects)
    )
    return DemoScene(before=paths[0], after=paths[1], crs=CRS, buildings=buildings)


def buildings_geojson(scene: DemoScene) -> dict[str, Any]:
    """The buildings' centres as an RFC 7946 FeatureCollection: WGS84, [lon, lat]."""
    to_wgs84 = Transformer.from_crs(scene.crs, "EPSG:4326", always_xy=True)
    features = []
    for b in scene.buildings:
        lon, lat = to_wgs84.transform(b.x, b.y)
        features.append({
            "type": "Feature",
            "geometry": {"type": "Point", "coordinates": [round(lon, 7), round(lat, 7)]},
            "properties": {"id": b.id, "destroyed": b.destroyed,
                           "width_m": b.width_m, "height_m": b.height_m},
        })
    return {"type": "FeatureCollection", "features": features}


def _write_geotiff(path: Path, bands: np.ndarray, transform: Affine) -> None:
    profile = {
        "driver": "GTiff", "width": bands.shape[2], "height": bands.shape[1], "count": 3,
        "dtype": "uint8", "crs": CRS, "transform": transform, "photometric": "RGB",
        "interleave": "pixel", "tiled": True, "blockxsize": 256, "blockysize": 256,
        "compress": "deflate", "predictor": 2, "zlevel": 3, "num_threads": "ALL_CPUS",
    }
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(bands)


def _render(rng: Rng, n: int, px: Px, seed: int, road: np.ndarray, walk: np.ndarray,
            parks: list[Rect], rects: list[Rect], storeys: list[int], destroyed: set[int],
            ) -> tuple[np.ndarray, np.ndarray]:
    before = _ground(rng, n, px, road, walk, parks)
    after = before.copy()
    for i, (rect, floors) in enumerate(zip(rects, storeys, strict=True)):
        _draw_shadow(before, rect, px(1.6 * floors))
        if i not in destroyed:
            _draw_shadow(after, rect, px(1.6 * floors))
    weathering = 0.03 * _smooth(rng, (n, n), px(3))
    weathering += 0.025 * rng.standard_normal((n, n), dtype=np.float32)
    for i, rect in enumerate(rects):
        _draw_roof(before, rect, weathering, np.random.default_rng((seed, 1, i)), px)
    for i in sorted(destroyed):
        _draw_rubble(after, before, rects[i], np.random.default_rng((seed, 2, i)), px)
    for i, (r0, c0, r1, c1) in enumerate(rects):
        if i not in destroyed:  # after the rubble, so spilled debris stays off intact roofs
            after[:, r0:r1, c0:c1] = before[:, r0:r1, c0:c1]
    return before, after


def _pixels(pixel_size_m: float) -> Px:
    """Ground metres to a whole, positive number of pixels."""
    return lambda metres: max(1, round(metres / pixel_size_m))


def _layout(rng: Rng, n: int, pixel_size_m: float
            ) -> tuple[np.ndarray, np.ndarray, list[Rect], list[int], list[Rect]]:
    """Road and sidewalk masks, building footprints, their storeys, and parks."""
    px = _pixels(pixel_size_m)
    road_r, walk_r = _axis_roads(rng, n, pixel_size_m)
    road_c, walk_c = _axis_roads(rng, n, pixel_size_m)
    road = road_r[:, None] | road_c[None, :]
    walk = (walk_r[:, None] | walk_c[None, :]) & ~road
    rects: list[Rect] = []
    parks: list[Rect] = []
    for r0, r1 in _free_runs(road_r | walk_r):
        for c0, c1 in _free_runs(road_c | walk_c):
            if rng.random() < 0.07 and (r1 - r0) * (c1 - c0) > px(30) ** 2:
                parks.append((r0, c0, r1, c1))
                continue
            lots: list[Rect] = []
            _split(rng, (r0, c0, r1, c1), px(rng.uniform(12, 28)), lots)
            for lr0, lc0, lr1, lc1 in lots:
                if rng.random() < 0.1:
                    continue  # an open yard or vacant lot
                # Most houses share walls with their neighbours; some stand back.
                s = np.where(rng.random(4) < 0.5, 0, rng.integers(1, px(2.5) + 1, size=4))
                rect = (lr0 + int(s[0]), lc0 + int(s[1]), lr1 - int(s[2]), lc1 - int(s[3]))
                if min(rect[2] - rect[0], rect[3] - rect[1]) >= px(6):
                    rects.append(rect)
    storeys = [int(rng.choice([1, 2, 2, 3, 3, 4, 5])) for _ in rects]
    return road, walk, rects, storeys, parks


def _axis_roads(rng: Rng, n: int, pixel_size_m: float) -> tuple[np.ndarray, np.ndarray]:
    """Road and sidewalk masks along one axis; the street grid is their outer product."""
    road, walk = np.zeros(n, bool), np.zeros(n, bool)
    pos, side = rng.uniform(-10, 60), _pixels(pixel_size_m)(2.5)  # metres; sidewalk px
    while pos < n * pixel_size_m:
        width = float(rng.choice([6.0, 9.0, 10.0, 12.0, 14.0, 22.0]))
        a, b = max(0, round(pos / pixel_size_m)), max(0, round((pos + width) / pixel_size_m))
        walk[max(0, a - side):b + side] = True
        road[a:b] = True
        pos += width + rng.uniform(45, 130)
    return road, walk & ~road


def _free_runs(mask: np.ndarray) -> list[tuple[int, int]]:
    edges = np.diff(np.r_[0, (~mask).astype(np.int8), 0])
    starts, ends = np.flatnonzero(edges == 1).tolist(), np.flatnonzero(edges == -1).tolist()
    return list(zip(starts, ends, strict=True))


def _split(rng: Rng, rect: Rect, max_side: int, out: list[Rect]) -> None:
    """Cut a block into lots no longer than max_side, like plots divided over time."""
    r0, c0, r1, c1 = rect
    h, w = r1 - r0, c1 - c0
    if max(h, w) <= max_side:
        out.append(rect)
    elif h >= w:
        cut = r0 + int(h * rng.uniform(0.3, 0.7))
        _split(rng, (r0, c0, cut, c1), max_side, out)
        _split(rng, (cut, c0, r1, c1), max_side, out)
    else:
        cut = c0 + int(w * rng.uniform(0.3, 0.7))
        _split(rng, (r0, c0, r1, cut), max_side, out)
        _split(rng, (r0, cut, r1, c1), max_side, out)


def _smooth(rng: Rng, shape: tuple[int, int], cell: int) -> np.ndarray:
    """Smooth noise of about unit spread whose features are about `cell` px wide."""
    gh, gw = shape[0] // cell + 3, shape[1] // cell + 3
    coarse = Image.fromarray(rng.standard_normal((gh, gw), dtype=np.float32))
    fine = np.asarray(coarse.resize((gw * cell, gh * cell), Image.Resampling.BICUBIC))
    return fine[cell:cell + shape[0], cell:cell + shape[1]]


def _ground(rng: Rng, n: int, px: Px, road: np.ndarray, walk: np.ndarray,
            parks: list[Rect]) -> np.ndarray:
    kind = np.zeros((n, n), np.uint8)  # 0 bare soil, 1 park, 2 road, 3 sidewalk
    for r0, c0, r1, c1 in parks:
        kind[r0:r1, c0:c1] = 1
    kind[road], kind[walk] = 2, 3
    # Per kind: a colour, the colour its patches shift toward, and how strong its
    # texture is at three scales (district, a few metres, grain).
    base = np.float32([[194, 176, 146], [166, 158, 116], [92, 92, 96], [168, 163, 152]])
    patch = np.float32([[158, 138, 110], [108, 132, 72], [78, 78, 82], [150, 146, 138]])
    amp = np.float32([[.05, .035, .045], [.04, .04, .06], [.03, .04, .05], [.02, .02, .03]])
    blend = np.clip(_smooth(rng, (n, n), px(18)) - 0.4, 0, 1)
    tone = 1 + amp[kind, 0] * _smooth(rng, (n, n), px(60))
    tone += amp[kind, 1] * _smooth(rng, (n, n), px(5))
    tone += amp[kind, 2] * rng.standard_normal((n, n), dtype=np.float32)
    img = np.empty((3, n, n), np.float32)
    for ch in range(3):
        np.multiply(base[kind, ch] + blend * (patch - base)[kind, ch], tone, out=img[ch])
    return img


def _clip(shape: tuple[int, ...], top: int, left: int, h: int, w: int
          ) -> tuple[tuple[slice, slice], tuple[slice, slice]]:
    """Slices of the (rows, cols) plane and of an (h, w) window at (top, left) that overlap."""
    r0, c0 = max(top, 0), max(left, 0)
    r1, c1 = max(min(top + h, shape[-2]), r0), max(min(left + w, shape[-1]), c0)
    return (slice(r0, r1), slice(c0, c1)), (slice(r0 - top, r1 - top), slice(c0 - left, c1 - left))


def _draw_shadow(img: np.ndarray, rect: Rect, length: int) -> None:
    # Sun in the south-west: shadows fall north-east, up and right in the image.
    r0, c0, r1, c1 = rect
    h, w = r1 - r0, c1 - c0
    mask = np.zeros((h + length, w + length), bool)
    for t in range(length + 1):
        mask[length - t:length - t + h, t:t + w] = True
    (rows, cols), src = _clip(img.shape, r0 - length, c0, h + length, w + length)
    img[:, rows, cols] *= np.where(mask[src], np.float32(0.5), np.float32(1.0))


def _draw_roof(img: np.ndarray, rect: Rect, weathering: np.ndarray, rng: Rng, px: Px) -> None:
    r0, c0, r1, c1 = rect
    h, w = r1 - r0, c1 - c0
    colour = ROOF_COLOURS[rng.choice(len(ROOF_COLOURS), p=ROOF_ODDS)][:, None, None]
    tone = rng.uniform(0.9, 1.06) + weathering[r0:r1, c0:c1]
    roof = colour * tone
    rim = px(0.5)  # parapet wall: lit on the sun side, shaded on the other
    roof[:, -rim:, :] *= 1.08
    roof[:, :, :rim] *= 1.08
    roof[:, :rim, :] *= 0.8
    roof[:, :, -rim:] *= 0.8
    if rng.random() < 0.6 and min(h, w) > px(8):  # stair housing with its own shadow
        sh, sw = px(rng.uniform(2.5, 4)), px(rng.uniform(2.5, 4))
        y, x = rng.integers(rim + px(1), h - sh - rim), rng.integers(rim, w - sw - rim - px(1))
        roof[:, max(0, y - px(1)):y, x + px(1):x + sw + px(1)] *= 0.65
        roof[:, y:y + sh, x:x + sw] = colour * 1.05
    for _ in range(int(rng.integers(0, 5))):  # water tanks and clutter
        s = px(rng.uniform(0.8, 1.6))
        y, x = rng.integers(0, h - s), rng.integers(0, w - s)
        tank = rng.choice([55, 70, 235]) + 5 * rng.standard_normal(3)
        roof[:, y:y + s, x:x + s] = tank[:, None, None]
    if rng.random() < 0.35 and min(h, w) > px(14):  # courtyard, shaded by its south-west walls
        ch, cw = int(h * rng.uniform(0.3, 0.45)), int(w * rng.uniform(0.3, 0.45))
        y, x = (h - ch) // 2, (w - cw) // 2
        yard = roof[:, y:y + ch, x:x + cw]
        yard[:] = np.float32([172, 160, 140])[:, None, None] * tone[y:y + ch, x:x + cw]
        yard[:, -px(2):, :] *= 0.55
        yard[:, :-px(2), :px(2)] *= 0.55
    img[:, r0:r1, c0:c1] = roof


def _draw_rubble(img: np.ndarray, before: np.ndarray, rect: Rect, rng: Rng, px: Px) -> None:
    r0, c0, r1, c1 = rect
    h, w = r1 - r0, c1 - c0
    spill = px(rng.uniform(2.5, 6.0))  # how far debris spreads beyond the walls
    hh, ww = h + 2 * spill, w + 2 * spill
    yy, xx = np.mgrid[0:hh, 0:ww]
    dy = np.maximum(np.maximum(spill - yy, yy - (spill + h - 1)), 0)
    dx = np.maximum(np.maximum(spill - xx, xx - (spill + w - 1)), 0)
    d = np.hypot(dy, dx) / spill  # 0 on the footprint, 1 at the spill's reach
    ragged = _smooth(rng, (hh, ww), px(1.5))
    debris = (d + 0.3 * ragged < 0.75) | ((d < 1.2) & (rng.random((hh, ww)) < 0.3 * (1.2 - d)))
    cell = px(1.2)  # broken slabs about a metre across
    slabs = rng.standard_normal((hh // cell + 1, ww // cell + 1), dtype=np.float32)
    slabs = np.repeat(np.repeat(slabs, cell, 0), cell, 1)[:hh, :ww]
    grain = rng.standard_normal((hh, ww), dtype=np.float32)
    shade = 0.88 + 0.1 * slabs + 0.12 * grain + 0.05 * ragged
    shade = np.where(grain < -1.4, 0.45, shade)  # voids between the pieces
    if rng.random() < 0.6:  # fire: soot in patches over the collapse
        shade *= 1 - 0.6 * np.clip(1.5 * (_smooth(rng, (hh, ww), px(3)) - 0.3), 0, 1) * (d < 0.9)
    concrete = 0.9 * before[:, r0:r1, c0:c1].mean(axis=(1, 2))
    mix = np.clip(0.5 + 0.6 * _smooth(rng, (hh, ww), px(2.5)), 0, 1)
    (rows, cols), src = _clip(img.shape, r0 - spill, c0 - spill, hh, ww)
    for ch, dust in enumerate((168, 150, 124)):
        rubble = shade * (mix * concrete[ch] + (1 - mix) * dust)
        band = img[ch, rows, cols]
        band[debris[src]] = rubble[src][debris[src]]
    if rng.random() < 0.5:  # a corner of the building still standing
        rh, rw = (max(1, int(side * rng.uniform(0.25, 0.5))) for side in (h, w))
        top = r0 if rng.random() < 0.5 else r1 - rh
        left = c0 if rng.random() < 0.5 else c1 - rw
        img[:, top:top + rh, left:left + rw] = before[:, top:top + rh, left:left + rw]


def _tree_layer(rng: Rng, n: int, px: Px, street: np.ndarray, rects: list[Rect],
                parks: list[Rect], seed: int) -> Trees:
    """Trees as (shade factor, leaf colour, canopy mask), drawn alike on both dates."""
    built = np.zeros((n, n), bool)
    for r0, c0, r1, c1 in rects:
        built[max(0, r0 - 2):r1 + 2, max(0, c0 - 2):c1 + 2] = True
    pts = rng.integers(0, n, size=(n * n // px(9) ** 2, 2))
    rows, cols = pts[:, 0], pts[:, 1]
    in_park = np.zeros(len(pts), bool)
    for r0, c0, r1, c1 in parks:
        in_park |= (rows >= r0) & (rows < r1) & (cols >= c0) & (cols < c1)
    yard = ~built[rows, cols] & ~street[rows, cols]
    keep = (yard & (rng.random(len(pts)) < 0.3)) | (in_park & (rng.random(len(pts)) < 0.8))
    trees = (np.ones((n, n), np.float32), np.zeros((3, n, n), np.float32), np.zeros((n, n), bool))
    for k, (r, c) in enumerate(pts[keep].tolist()):
        radius = px(rng.uniform(1.5, 4.5))
        _draw_tree(trees, r, c, radius, np.random.default_rng((seed, 3, k)))
    return trees


def _draw_tree(trees: Trees, r: int, c: int, radius: int, rng: Rng) -> None:
    shade, leaves, canopy = trees
    off = max(1, int(0.7 * radius))  # shadow falls north-east, like the buildings'
    n = radius + off + 1
    yy, xx = np.mgrid[-n:n + 1, -n:n + 1].astype(np.float32)
    edge = radius * (0.85 + 0.3 * rng.random(yy.shape))  # ragged foliage edge
    crown = np.hypot(yy, xx) <= edge
    shadow = np.hypot(yy + off, xx - off) <= edge
    lit = 1 + 0.25 * np.clip((yy - xx) / (2 * radius), -1, 1)  # lit from the south-west
    lit += 0.12 * rng.standard_normal(yy.shape)
    colour = TREE_COLOURS[rng.integers(len(TREE_COLOURS))][:, None, None] * lit
    (rows, cols), src = _clip(shade.shape, r - n, c - n, 2 * n + 1, 2 * n + 1)
    shade[rows, cols][shadow[src]] = np.minimum(shade[rows, cols][shadow[src]], 0.55)
    leaves[:, rows, cols][:, crown[src]] = colour[:, src[0], src[1]][:, crown[src]]
    canopy[rows, cols] |= crown[src]
