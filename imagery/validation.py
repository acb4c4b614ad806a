"""Checks that a file is imagery we can tile, before anything is stored.

Every failure raises ImageryError with a message an admin can act on.
"""

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
from rasterio.enums import ColorInterp
from rasterio.errors import RasterioError
from rasterio.warp import transform_bounds

from imagery.errors import ImageryError

log = logging.getLogger(__name__)

SUPPORTED_DTYPES = {"uint8", "uint16", "int16", "uint32", "int32", "float32", "float64"}
# Declared raster bytes per byte of file above which a large raster is a decompression
# bomb: real imagery compresses 2-20x (JPEG), a mostly-nodata scene perhaps 200x.
BOMB_RATIO = 1000
BOMB_MIN_PIXELS = 50_000_000
# Files up to this many decoded bytes are read whole at upload; larger ones in SAMPLED_BLOCKS blocks.
FULL_CHECK_BYTES = 64 * 1024 * 1024
SAMPLED_BLOCKS = 64


@dataclass(frozen=True)
class SourceInfo:
    path: Path
    crs_wkt: str
    transform: tuple[float, ...]
    width: int
    height: int
    count: int
    dtype: str
    nodata: float | None
    colorinterp: tuple[str, ...]
    bounds: tuple[float, float, float, float]
    resolution: tuple[float, float]
    is_tiled: bool
    is_geographic: bool


def inspect_source(path: Path, *, max_pixels: int, max_bands: int, display_name: str | None = None) -> SourceInfo:
    """Open ``path`` and check it is a georeferenced, readable raster of sane size and type."""
    name = display_name or path.name
    size = path.stat().st_size
    if size == 0:
        raise ImageryError(f"{name}: the file is empty.")
    try:
        with rasterio.open(path) as src:
            info = _describe(src, path)
            _check_header(info, name, size, max_pixels=max_pixels, max_bands=max_bands, driver=src.driver)
            _check_readable(src, name)
    except RasterioError as exc:
        raise ImageryError(f"{name}: not a readable GeoTIFF ({_short(exc, hide=str(path))}).") from exc
    return info


def _describe(src: rasterio.DatasetReader, path: Path) -> SourceInfo:
    crs = src.crs
    return SourceInfo(
        path=path,
        crs_wkt=crs.to_wkt() if crs else "",
        transform=tuple(src.transform)[:6],
        width=src.width,
        height=src.height,
        count=src.count,
        dtype=src.dtypes[0] if src.count else "",
        nodata=src.nodata,
        colorinterp=tuple(ci.name for ci in src.colorinterp),
        bounds=tuple(src.bounds),
        resolution=src.res,
        is_tiled=bool(src.block_shapes) and src.block_shapes[0][1] < src.width,
        is_geographic=bool(crs and crs.is_geographic),
    )


def _check_header(info: SourceInfo, name: str, file_size: int, *, max_pixels: int, max_bands: int,
                  driver: str) -> None:
    if driver != "GTiff":
        raise ImageryError(f"{name}: this is a {driver} file; upload GeoTIFF imagery (.tif).")
    if not info.crs_wkt or info.transform == (1.0, 0.0, 0.0, 0.0, 1.0, 0.0):
        raise ImageryError(f"{name}: the TIFF has no georeferencing (no CRS or geotransform), "
                           "so its pixels cannot be placed on the ground.")
    if info.transform[1] != 0 or info.transform[3] != 0:
        raise ImageryError(f"{name}: rotated or sheared rasters are not supported; warp it north-up first.")
    if info.count == 0:
        raise ImageryError(f"{name}: the raster has no bands.")
    if info.count > max_bands:
        raise ImageryError(f"{name}: {info.count} bands is more than the {max_bands} we accept.")
    if info.dtype not in SUPPORTED_DTYPES:
        raise ImageryError(f"{name}: pixel type {info.dtype} is not supported "
                           f"(use one of {', '.join(sorted(SUPPORTED_DTYPES))}).")
    pixels = info.width * info.height
    if pixels > max_pixels:
        raise ImageryError(f"{name}: the raster declares {info.width} x {info.height} pixels, "
                           f"more than the limit of {max_pixels:,}.")
    declared = pixels * info.count * np.dtype(info.dtype).itemsize
    if pixels > BOMB_MIN_PIXELS and declared > BOMB_RATIO * file_size:
        raise ImageryError(f"{name}: a {file_size:,}-byte file declares {info.width} x {info.height} pixels "
                           f"({declared:,} bytes); refusing it as a decompression bomb.")


def _check_readable(src: rasterio.DatasetReader, name: str) -> None:
    """Decode every block of a small file, or SAMPLED_BLOCKS spread over a large one and its last block.

    A truncated or corrupt file fails on the blocks it lacks. Damage that a sample misses in
    a multi-GB file fails its tiling chunk later, and the layer then says where.
    """
    windows = [window for _, window in src.block_windows(1)]
    declared = src.width * src.height * src.count * np.dtype(src.dtypes[0]).itemsize
    if declared > FULL_CHECK_BYTES and len(windows) > SAMPLED_BLOCKS:
        picks = np.linspace(0, len(windows) - 1, num=SAMPLED_BLOCKS).round().astype(int)
        windows = [windows[i] for i in sorted(set(picks))]
    for window in windows:
        try:
            src.read(window=window)
        except RasterioError as exc:
            reason = _short(exc, hide=src.name)
            raise ImageryError(f"{name}: the file is truncated or corrupt (reading pixels at row "
                               f"{window.row_off}, column {window.col_off} failed: {reason}).") from exc


def check_mosaic(infos: list[SourceInfo], names: list[str]) -> None:
    """Files of one layer must combine into one mosaic: same CRS, bands, type and resolution."""
    first, first_name = infos[0], names[0]
    for info, name in zip(infos[1:], names[1:]):
        if info.count != first.count:
            raise ImageryError(f"{name} has {info.count} bands but {first_name} has {first.count}; "
                               "files of one date must have the same bands.")
        if info.dtype != first.dtype:
            raise ImageryError(f"{name} is {info.dtype} but {first_name} is {first.dtype}; "
                               "files of one date must have the same pixel type.")
        if rasterio.crs.CRS.from_wkt(info.crs_wkt) != rasterio.crs.CRS.from_wkt(first.crs_wkt):
            raise ImageryError(f"{name} and {first_name} are in different coordinate systems; "
                               "files of one date must share one.")
        if not np.allclose(info.resolution, first.resolution, rtol=0.01):
            raise ImageryError(f"{name} has {info.resolution[0]:g} x {info.resolution[1]:g} pixels but "
                               f"{first_name} has {first.resolution[0]:g} x {first.resolution[1]:g}; "
                               "files of one date must have the same resolution.")


def mosaic_bounds(infos: list[SourceInfo]) -> tuple[float, float, float, float]:
    return (min(i.bounds[0] for i in infos), min(i.bounds[1] for i in infos),
            max(i.bounds[2] for i in infos), max(i.bounds[3] for i in infos))


def bounds_in(crs_wkt: str, bounds: tuple[float, float, float, float], dst_crs: str) -> tuple[float, ...]:
    return tuple(transform_bounds(rasterio.crs.CRS.from_wkt(crs_wkt), dst_crs, *bounds, densify_pts=21))


def _short(exc: Exception, *, hide: str) -> str:
    """GDAL's first line, without our own path (a staging name means nothing to the uploader)."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text.replace(f"'{hide}'", "the file").replace(hide, "the file")[:200]


def display_bands(info: SourceInfo) -> tuple[list[int], int | None]:
    """The 1-based bands shown as red, green, blue (one for grey), and the alpha band if any."""
    interp = list(info.colorinterp)
    alpha = interp.index(ColorInterp.alpha.name) + 1 if ColorInterp.alpha.name in interp else None
    names = [ColorInterp.red.name, ColorInterp.green.name, ColorInterp.blue.name]
    if all(n in interp for n in names):
        return [interp.index(n) + 1 for n in names], alpha
    colour = [b for b in range(1, info.count + 1) if b != alpha]
    if len(colour) >= 3:
        return colour[:3], alpha
    return colour[:1], alpha
