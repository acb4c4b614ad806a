"""Cutting imagery into tiles on the project grid: reading, display stretch, encoding.

No Django here: plain paths, numpy arrays and bytes, so the benchmark can time it alone.
A chunk reads its window of every source file once and encodes all of its cells.
"""

import io
from dataclasses import dataclass, field

import numpy as np
import rasterio
from PIL import Image
from pyproj import Transformer
from rasterio.crs import CRS
from rasterio.enums import MaskFlags, Resampling
from rasterio.vrt import WarpedVRT
from rasterio.windows import Window

from imagery.grid import ChunkPlan, GridSpec, chunk_pixel_window

CONTENT_TYPES = {"webp": "image/webp", "jpeg": "image/jpeg", "png": "image/png"}


@dataclass(frozen=True)
class Display:
    """How source values become 8-bit pixels: which bands, and a per-band linear stretch."""

    bands: tuple[int, ...]  # 1-based: three for colour, one for grey
    alpha: int | None = None
    stretch: tuple[tuple[float, float], ...] | None = None  # [low, high] per band; None: already 8-bit

    @classmethod
    def from_json(cls, value: dict) -> "Display":
        stretch = value.get("stretch")
        return cls(tuple(value["bands"]), value.get("alpha"),
                   tuple(tuple(pair) for pair in stretch) if stretch else None)

    def to_json(self) -> dict:
        return {"bands": list(self.bands), "alpha": self.alpha,
                "stretch": [list(pair) for pair in self.stretch] if self.stretch else None}


@dataclass(frozen=True)
class EncodedTile:
    col: int
    row: int
    data: bytes


@dataclass
class ChunkResult:
    cells: int = 0
    tiles: list[EncodedTile] = field(default_factory=list)


def encode_image(pixels: np.ndarray, *, fmt: str, quality: int) -> bytes:
    """Encode (h, w, bands) uint8 pixels, 1 or 3 bands, as WebP, JPEG or PNG."""
    buffer = io.BytesIO()
    image = Image.fromarray(pixels[..., 0] if pixels.shape[2] == 1 else pixels)
    if fmt == "webp":
        # method 2: 45% of the default's (4) time for 5% more bytes (bench.tiling, section 5).
        image.save(buffer, "WEBP", quality=quality, method=2)
    elif fmt == "jpeg":
        image.save(buffer, "JPEG", quality=quality, optimize=False)
    else:
        image.save(buffer, "PNG", compress_level=1)
    return buffer.getvalue()


def cut_chunk(*, paths: list[str], spec: GridSpec, display: Display, chunk: ChunkPlan,
              fmt: str, quality: int) -> ChunkResult:
    """Read the chunk's window from every source once and encode each non-empty cell."""
    x_off, y_off, width, height = chunk_pixel_window(spec, chunk)
    pixels, valid = read_grid_window(paths=paths, spec=spec, display=display,
                                     window=(x_off, y_off, width, height))
    result = ChunkResult()
    for col in range(chunk.col_start, chunk.col_stop):
        for row in range(chunk.row_start, chunk.row_stop):
            result.cells += 1
            cx, cy, size, _ = spec.cell_window(col, row)
            sl = (slice(cy - y_off, cy - y_off + size), slice(cx - x_off, cx - x_off + size))
            if not valid[sl].any():
                continue  # nodata in this date: no image, and no tile unless another date has one
            result.tiles.append(EncodedTile(col, row, encode_image(pixels[sl], fmt=fmt, quality=quality)))
    return result


def read_grid_window(*, paths: list[str], spec: GridSpec, display: Display,
                     window: tuple[int, int, int, int]) -> tuple[np.ndarray, np.ndarray]:
    """The grid window (x_off, y_off, width, height) as (h, w, bands) 8-bit pixels and a validity mask.

    Pixels outside every source are 0 and invalid. Later files of a mosaic win where they overlap.
    Pixels are kept band-last, the layout the encoders take, so no tile pays for a transposing copy.
    """
    x_off, y_off, width, height = window
    pixels = np.zeros((height, width, len(display.bands)), dtype=np.uint8)
    valid = np.zeros((height, width), dtype=bool)
    for path in paths:
        with rasterio.open(path) as src:
            offset = _aligned_offset(src, spec)
            if offset is None:
                _paste_warped(src, spec, display, window, pixels, valid)
            else:
                _paste_aligned(src, offset, display, window, pixels, valid)
    return pixels, valid


def _aligned_offset(src: rasterio.DatasetReader, spec: GridSpec) -> tuple[int, int] | None:
    """The source's pixel offset on the grid when it lies on the grid already (no warp needed)."""
    t = src.transform
    if src.crs != CRS.from_user_input(spec.crs) or not np.isclose(t.a, spec.pixel_size, rtol=1e-9) \
            or not np.isclose(-t.e, spec.pixel_size, rtol=1e-9):
        return None
    fx = (t.c - spec.origin_x) / spec.pixel_size
    fy = (spec.origin_y - t.f) / spec.pixel_size
    if abs(fx - round(fx)) > 1e-3 or abs(fy - round(fy)) > 1e-3:
        return None
    return round(fx), round(fy)


def _paste(pixels: np.ndarray, valid: np.ndarray, region: tuple[slice, slice], data: np.ndarray,
           mask: np.ndarray, display: Display) -> None:
    np.copyto(pixels[region], to_8bit(data, display).transpose(1, 2, 0), where=mask[..., None])
    valid[region] |= mask


def _paste_aligned(src: rasterio.DatasetReader, offset: tuple[int, int], display: Display,
                   window: tuple[int, int, int, int], pixels: np.ndarray, valid: np.ndarray) -> None:
    x_off, y_off, width, height = window
    # The window in source pixels, clipped to the source.
    sx0, sy0 = max(x_off - offset[0], 0), max(y_off - offset[1], 0)
    sx1, sy1 = min(x_off + width - offset[0], src.width), min(y_off + height - offset[1], src.height)
    if sx0 >= sx1 or sy0 >= sy1:
        return
    src_window = Window(sx0, sy0, sx1 - sx0, sy1 - sy0)
    dy, dx = sy0 + offset[1] - y_off, sx0 + offset[0] - x_off
    region = (slice(dy, dy + sy1 - sy0), slice(dx, dx + sx1 - sx0))
    if _reads_straight(src, display):
        # 8-bit, every pixel valid: GDAL writes into the band-last canvas through a (bands, h, w) view.
        src.read(list(display.bands), window=src_window, out=pixels[region].transpose(2, 0, 1))
        valid[region] = True
        return
    data = src.read(list(display.bands), window=src_window)
    _paste(pixels, valid, region, data, _source_mask(src, display, data, src_window), display)


def _reads_straight(src: rasterio.DatasetReader, display: Display) -> bool:
    return (display.stretch is None and display.alpha is None and src.nodata is None
            and all(src.dtypes[b - 1] == "uint8" for b in display.bands)
            and all(src.mask_flag_enums[b - 1] == [MaskFlags.all_valid] for b in display.bands))


def _paste_warped(src: rasterio.DatasetReader, spec: GridSpec, display: Display,
                  window: tuple[int, int, int, int], pixels: np.ndarray, valid: np.ndarray) -> None:
    x_off, y_off, width, height = window
    # A warped view of the whole grid extent; GDAL reads only the source blocks this window needs.
    width = min(width, spec.width - x_off)
    height = min(height, spec.height - y_off)
    if width <= 0 or height <= 0:
        return
    with WarpedVRT(src, crs=CRS.from_user_input(spec.crs), transform=spec.transform, width=spec.width,
                   height=spec.height, resampling=Resampling.bilinear, add_alpha=display.alpha is None) as vrt:
        grid_window = Window(x_off, y_off, width, height)
        data = vrt.read(list(display.bands), window=grid_window)
        mask = vrt.read(display.alpha or vrt.count, window=grid_window) > 0
    _paste(pixels, valid, (slice(0, height), slice(0, width)), data, mask, display)


def _source_mask(src: rasterio.DatasetReader, display: Display, data: np.ndarray, window: Window) -> np.ndarray:
    if display.alpha:
        return src.read(display.alpha, window=window) > 0
    if src.nodata is not None:
        return np.any(data != src.nodata, axis=0)
    flags = src.mask_flag_enums[display.bands[0] - 1]
    if flags == [MaskFlags.all_valid]:
        return np.ones(data.shape[1:], dtype=bool)
    return src.dataset_mask(window=window) > 0


def to_8bit(data: np.ndarray, display: Display) -> np.ndarray:
    if display.stretch is None:
        return data.astype(np.uint8, copy=False)
    out = np.empty(data.shape, dtype=np.uint8)
    for band, (low, high) in enumerate(display.stretch):
        scaled = (data[band].astype(np.float32) - low) * (255.0 / max(high - low, 1e-9))
        np.clip(scaled, 0, 255, out=scaled)
        out[band] = scaled.astype(np.uint8)
    return out


def cell_bounds_wgs84(spec: GridSpec, cells: list[tuple[int, int]]) -> list[tuple[float, float, float, float]]:
    """(west, south, east, north) of each cell, from its corners and edge midpoints."""
    if not cells:
        return []
    to_wgs84 = Transformer.from_crs(CRS.from_user_input(spec.crs).to_wkt(), "EPSG:4326", always_xy=True)
    fractions = np.array([0.0, 0.5, 1.0])
    xs, ys = [], []
    for col, row in cells:
        minx, miny, maxx, maxy = spec.cell_bounds(col, row)
        gx, gy = np.meshgrid(minx + fractions * (maxx - minx), miny + fractions * (maxy - miny))
        xs.append(gx.ravel())
        ys.append(gy.ravel())
    lon, lat = to_wgs84.transform(np.concatenate(xs), np.concatenate(ys))
    lon, lat = lon.reshape(len(cells), -1), lat.reshape(len(cells), -1)
    return [(float(lo.min()), float(la.min()), float(lo.max()), float(la.max())) for lo, la in zip(lon, lat)]


def compute_stretch(paths: list[str], bands: tuple[int, ...], *,
                    sample_size: int = 1024) -> tuple[tuple[float, float], ...]:
    """A 2-98 percentile stretch per band over all files, from decimated reads (overviews when present).

    One stretch for the whole layer, so that neighbouring tiles have the same colours.
    """
    samples: list[list[np.ndarray]] = [[] for _ in bands]
    for path in paths:
        with rasterio.open(path) as src:
            scale = max(1.0, max(src.width, src.height) / sample_size)
            shape = (len(bands), max(1, int(src.height / scale)), max(1, int(src.width / scale)))
            data = src.read(list(bands), out_shape=shape, masked=True)
        for index, band in enumerate(data):
            samples[index].append(band.compressed())
    stretch = []
    for parts in samples:
        values = np.concatenate(parts)
        if values.size == 0:
            stretch.append((0.0, 1.0))
            continue
        low, high = np.percentile(values, [2, 98])
        stretch.append((float(low), float(high) if high > low else float(low) + 1.0))
    return tuple(stretch)
