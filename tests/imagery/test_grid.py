import pytest

from imagery.grid import GridSpec, chunk_pixel_window, plan_chunks


def spec(width: int = 2048, height: int = 1500, size: int = 512, overlap: int = 64) -> GridSpec:
    return GridSpec("EPSG:32637", 1000.0, 9000.0, 0.5, width, height, size, overlap)


def test_cells_start_at_multiples_of_the_stride() -> None:
    grid = spec()
    assert grid.stride == 448
    assert grid.cell_window(3, 2) == (1344, 896, 512, 512)
    assert grid.cell_bounds(1, 0) == (1000.0 + 448 * 0.5, 9000.0 - 256.0, 1000.0 + 448 * 0.5 + 256.0, 9000.0)


@pytest.mark.parametrize(("extent", "cells"), [(100, 1), (512, 1), (513, 2), (960, 2), (961, 3), (2048, 5)])
def test_the_last_cell_reaches_the_end_of_the_extent(extent: int, cells: int) -> None:
    grid = spec(width=extent, height=extent)
    assert grid.cols == cells
    last = grid.cell_window(grid.cols - 1, 0)
    assert last[0] + last[2] >= extent
    assert grid.cols == 1 or grid.cell_window(grid.cols - 2, 0)[0] + 512 < extent


def test_cells_touching_finds_every_cell_that_intersects_the_bounds() -> None:
    grid = spec()
    # A 1 m box at grid pixels x 460..462: inside cell 0 (0..512) and cell 1 (448..960).
    cols, rows = grid.cells_touching((1000 + 230.0, 9000 - 11.0, 1000 + 231.0, 9000 - 10.0))
    assert list(cols) == [0, 1]
    assert list(rows) == [0]
    everything = grid.cells_touching((0.0, 0.0, 1e6, 1e6))
    assert (everything[0], everything[1]) == (range(0, grid.cols), range(0, grid.rows))


def test_cells_touching_is_empty_outside_the_grid() -> None:
    cols, rows = spec().cells_touching((0.0, 0.0, 10.0, 10.0))
    assert len(cols) == 0 or len(rows) == 0


def test_chunks_cover_every_cell_once() -> None:
    plans = plan_chunks(cols=range(1, 8), rows=range(0, 5), cells_per_side=3)
    cells = [(c, r) for p in plans for c in range(p.col_start, p.col_stop) for r in range(p.row_start, p.row_stop)]
    assert sorted(cells) == sorted((c, r) for c in range(1, 8) for r in range(0, 5))
    assert [p.index for p in plans] == list(range(len(plans)))


def test_a_chunk_window_holds_all_of_its_cells() -> None:
    grid = spec()
    plan = plan_chunks(cols=range(0, 5), rows=range(0, 4), cells_per_side=4)[0]
    x_off, y_off, width, height = chunk_pixel_window(grid, plan)
    last = grid.cell_window(plan.col_stop - 1, plan.row_stop - 1)
    assert (x_off, y_off) == (0, 0)
    assert (x_off + width, y_off + height) == (last[0] + last[2], last[1] + last[3])


def test_the_overlap_must_be_smaller_than_the_tile() -> None:
    with pytest.raises(ValueError, match="overlap"):
        spec(size=256, overlap=256)
