"""Tiny GeoTIFFs made in the test, with rasterio."""

from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from affine import Affine
from rasterio.transform import from_origin

UTM = "EPSG:32637"  # a UTM zone over northern Syria


def scene(width: int, height: int, count: int = 3, dtype: str = "uint8", seed: int = 1) -> np.ndarray:
    """Smooth gradients plus texture: every pixel differs, so misplaced reads show."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    bands = []
    for band in range(count):
        base = (xx * (band + 1) * 0.7 + yy * 0.3 * (band + 2)) % 200 + rng.integers(0, 40, size=(height, width))
        bands.append(base)
    data = np.stack(bands).astype(np.float64)
    if np.dtype(dtype).kind == "f":
        return data.astype(dtype)
    top = np.iinfo(dtype).max
    return (data * (top / 255.0 if top > 255 else 1)).clip(0, top).astype(dtype)


def write_geotiff(path: Path, data: np.ndarray | None = None, *, width: int = 600, height: int = 500, count: int = 3,
                  dtype: str = "uint8", crs: str | None = UTM, transform: Affine | None = None,
                  origin: tuple[float, float] = (500_000.0, 3_980_000.0), pixel_size: float = 0.5,
                  **profile: Any) -> Path:
    if data is None:
        data = scene(width, height, count, dtype)
    count, height, width = data.shape
    options: dict[str, Any] = {"driver": "GTiff", "width": width, "height": height, "count": count,
                               "dtype": str(data.dtype)}
    if crs is not None:
        options["crs"] = crs
        options["transform"] = transform or from_origin(origin[0], origin[1], pixel_size, pixel_size)
    options.update(profile)
    with rasterio.open(path, "w", **options) as dst:
        dst.write(data)
    return path
