from imagery.grid import GridSpec
from imagery.models import Grid, ImageryLayer, Tile, TileImage
from tagging.models import Project
from tagging.projects import create_project


def project_with_tiles(slug: str = "raqqa", *, cols: int = 3, rows: int = 2, dates: tuple[str, ...] = ("2017-06-01",),
                       **options: object) -> Project:
    """An active project with a grid of cols x rows tiles and one (empty) image per tile and date; no rasters."""
    project = create_project(slug=slug, name=slug.title(), status=Project.Status.ACTIVE, **options)  # type: ignore[arg-type]
    spec = GridSpec("EPSG:32637", 500_000.0, 3_980_000.0, 0.5, 448 * cols + 64, 448 * rows + 64)
    grid = Grid.objects.create(project=project, crs=spec.crs, origin_x=spec.origin_x, origin_y=spec.origin_y,
                               pixel_size=spec.pixel_size, width=spec.width, height=spec.height)
    layers = [ImageryLayer.objects.create(project=project, date=d, crs=spec.crs, bounds=[0, 0, 1, 1],
                                          bounds_wgs84=[0, 0, 1, 1], resolution=0.5, width=spec.width,
                                          height=spec.height, band_count=3, dtype="uint8", status="ready",
                                          display={"bands": [1, 2, 3], "alpha": None, "stretch": None})
              for d in dates]
    for row in range(rows):
        for col in range(cols):
            x_off, y_off, size, _ = spec.cell_window(col, row)
            minx, miny, maxx, maxy = spec.cell_bounds(col, row)
            tile = Tile.objects.create(grid=grid, col=col, row=row, x_off=x_off, y_off=y_off, size=size, minx=minx,
                                       miny=miny, maxx=maxx, maxy=maxy, west=39.0, south=35.9, east=39.01,
                                       north=35.91)
            for layer in layers:
                TileImage.objects.create(tile=tile, layer=layer, key=f"k/{tile.pk}/{layer.pk}",
                                         content_type="image/webp", size_bytes=1, etag="x")
    return project
