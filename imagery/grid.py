"""The project grid as plain arithmetic: no Django, no I/O.

Units: grid pixels for windows, the grid CRS's metres for bounds.
"""

import math
from dataclasses import dataclass

from affine import Affine


@dataclass(frozen=True)
class GridSpec:
    crs: str
    origin_x: float  # top-left corner, grid CRS metres
    origin_y: float
    pixel_size: float  # metres per pixel
    width: int  # extent in pixels
    height: int
    tile_size: int = 512
    overlap: int = 64

    def __post_init__(self) -> None:
        if self.tile_size <= 0 or not 0 <= self.overlap < self.tile_size:
            raise ValueError("the overlap must be at least 0 and smaller than the tile size")

    @property
    def stride(self) -> int:
        return self.tile_size - self.overlap

    @property
    def transform(self) -> Affine:
        return Affine(self.pixel_size, 0.0, self.origin_x, 0.0, -self.pixel_size, self.origin_y)

    @property
    def cols(self) -> int:
        return _cells_along(self.width, self.tile_size, self.stride)

    @property
    def rows(self) -> int:
        return _cells_along(self.height, self.tile_size, self.stride)

    def cell_window(self, col: int, row: int) -> tuple[int, int, int, int]:
        """(x_off, y_off, width, height) of cell (col, row) in grid pixels."""
        return col * self.stride, row * self.stride, self.tile_size, self.tile_size

    def cell_bounds(self, col: int, row: int) -> tuple[float, float, float, float]:
        """(minx, miny, maxx, maxy) of cell (col, row) in the grid CRS."""
        x_off, y_off, size, _ = self.cell_window(col, row)
        minx = self.origin_x + x_off * self.pixel_size
        maxy = self.origin_y - y_off * self.pixel_size
        return minx, maxy - size * self.pixel_size, minx + size * self.pixel_size, maxy

    def cells_touching(self, bounds: tuple[float, float, float, float]) -> tuple[range, range]:
        """The columns and rows of the cells that intersect ``bounds`` (grid CRS), clipped to the grid."""
        minx, miny, maxx, maxy = bounds
        px0 = (minx - self.origin_x) / self.pixel_size
        px1 = (maxx - self.origin_x) / self.pixel_size
        py0 = (self.origin_y - maxy) / self.pixel_size
        py1 = (self.origin_y - miny) / self.pixel_size
        return (_cells_over(px0, px1, self.tile_size, self.stride, self.cols),
                _cells_over(py0, py1, self.tile_size, self.stride, self.rows))


def _cells_along(extent: int, size: int, stride: int) -> int:
    # Enough cells that the last one reaches the end of the extent.
    return max(1, math.ceil(max(extent - size, 0) / stride) + 1)


def _cells_over(start: float, stop: float, size: int, stride: int, count: int) -> range:
    # Cell i covers [i*stride, i*stride + size): it touches [start, stop) when both overlap.
    first = max(0, math.floor((start - size) / stride) + 1)
    last = min(count - 1, math.ceil(stop / stride) - 1)
    return range(first, last + 1) if first <= last and stop > start else range(0)


@dataclass(frozen=True)
class ChunkPlan:
    index: int
    col_start: int
    col_stop: int
    row_start: int
    row_stop: int


def plan_chunks(*, cols: range, rows: range, cells_per_side: int) -> list[ChunkPlan]:
    """Split a block of cells into square chunks of at most ``cells_per_side``² cells, row-major."""
    plans: list[ChunkPlan] = []
    for row_start in range(rows.start, rows.stop, cells_per_side):
        for col_start in range(cols.start, cols.stop, cells_per_side):
            plans.append(ChunkPlan(len(plans), col_start, min(col_start + cells_per_side, cols.stop),
                                   row_start, min(row_start + cells_per_side, rows.stop)))
    return plans


def chunk_pixel_window(spec: GridSpec, chunk: ChunkPlan) -> tuple[int, int, int, int]:
    """(x_off, y_off, width, height) in grid pixels that holds every cell of the chunk."""
    x_off = chunk.col_start * spec.stride
    y_off = chunk.row_start * spec.stride
    width = (chunk.col_stop - chunk.col_start - 1) * spec.stride + spec.tile_size
    height = (chunk.row_stop - chunk.row_start - 1) * spec.stride + spec.tile_size
    return x_off, y_off, width, height
