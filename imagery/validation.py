"""Checks that a file is imagery we can tile, before anything is stored.

Every failure raises ImageryError with a message an admin can act on.
"""

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
from django.utils.translation import gettext as _
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
        raise ImageryError(_("%(file)s: the file is empty.") % {"file": name})
    try:
        with rasterio.open(path) as src:
            info = _describe(src, path)
            _check_header(info, name, size, max_pixels=max_pixels, max_bands=max_bands, driver=src.driver)
            _check_readable(src, name)
    except RasterioError as exc:
        raise ImageryError(_("%(file)s: not a readable GeoTIFF (%(reason)s).")
                           % {"file": name, "reason": _short(exc, hide=str(path))}) from exc
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
        raise ImageryError(_("%(file)s: this is a %(driver)s file; upload GeoTIFF imagery (.tif).")
                           % {"file": name, "driver": driver})
    if not info.crs_wkt or info.transform == (1.0, 0.0, 0.0, 0.0, 1.0, 0.0):
        raise ImageryError(_("%(file)s: the TIFF has no georeferencing (no CRS or geotransform), "
                             "so its pixels cannot be placed on the ground.") % {"file": name})
    if info.transform[1] != 0 or info.transform[3] != 0:
        raise ImageryError(_("%(file)s: rotated or sheared rasters are not supported; warp it north-up first.")
                           % {"file": name})
    if info.count == 0:
        raise ImageryError(_("%(file)s: the raster has no bands.") % {"file": name})
    if info.count > max_bands:
        raise ImageryError(_("%(file)s: %(count)s bands is more than the %(most)s we accept.")
                           % {"file": name, "count": info.count, "most": max_bands})
    if info.dtype not in SUPPORTED_DTYPES:
        raise ImageryError(_("%(file)s: pixel type %(dtype)s is not supported (use one of %(choices)s).")
                           % {"file": name, "dtype": info.dtype, "choices": ", ".join(sorted(SUPPORTED_DTYPES))})
    pixels = info.width * info.height
    if pixels > max_pixels:
        raise ImageryError(_("%(file)s: the raster declares %(width)s x %(height)s pixels, more than the limit of "
                             "%(limit)s.")
                           % {"file": name, "width": info.width, "height": info.height, "limit": f"{max_pixels:,}"})
    declared = pixels * info.count * np.dtype(info.dtype).itemsize
    if pixels > BOMB_MIN_PIXELS and declared > BOMB_RATIO * file_size:
        raise ImageryError(_("%(file)s: a %(size)s-byte file declares %(width)s x %(height)s pixels "
                             "(%(declared)s bytes); refusing it as a decompression bomb.")
                           % {"file": name, "size": f"{file_size:,}", "width": info.width, "height": info.height,
                              "declared": f"{declared:,}"})


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
            raise ImageryError(_("%(file)s: the file is truncated or corrupt (reading pixels at row %(row)s, column "
                                 "%(column)s failed: %(reason)s).")
                               % {"file": name, "row": window.row_off, "column": window.col_off, "reason": reason}
                               ) from exc


def check_mosaic(infos: list[SourceInfo], names: list[str]) -> None:
    """Files of one layer must combine into one mosaic: same CRS, bands, type and resolution."""
    first, first_name = infos[0], names[0]
    for info, name in zip(infos[1:], names[1:]):
        if info.count != first.count:
            raise ImageryError(_("%(file)s has %(count)s bands but %(first)s has %(first_count)s; "
                                 "files of one date must have the same bands.")
                               % {"file": name, "count": info.count, "first": first_name, "first_count": first.count})
        if info.dtype != first.dtype:
            raise ImageryError(_("%(file)s is %(dtype)s but %(first)s is %(first_dtype)s; "
                                 "files of one date must have the same pixel type.")
                               % {"file": name, "dtype": info.dtype, "first": first_name, "first_dtype": first.dtype})
        if rasterio.crs.CRS.from_wkt(info.crs_wkt) != rasterio.crs.CRS.from_wkt(first.crs_wkt):
            raise ImageryError(_("%(file)s and %(first)s are in different coordinate systems; "
                                 "files of one date must share one.") % {"file": name, "first": first_name})
        if not np.allclose(info.resolution, first.resolution, rtol=0.01):
            raise ImageryError(_("%(file)s has %(resolution)s pixels but %(first)s has %(first_resolution)s; "
                                 "files of one date must have the same resolution.")
                               % {"file": name, "resolution": f"{info.resolution[0]:g} x {info.resolution[1]:g}",
                                  "first": first_name,
                                  "first_resolution": f"{first.resolution[0]:g} x {first.resolution[1]:g}"})


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
