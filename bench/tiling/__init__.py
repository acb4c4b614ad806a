"""Tiling benchmark: `python -m bench.tiling [--size N] [--format webp|jpeg]` from the repository root.

In one run, on one generated N x N RGB GeoTIFF (512 px internal tiles, DEFLATE; see scene.py):

1. our tiler, imagery.tiling.cut_chunk over every chunk of the project grid, at 1 and 2
   processes, writing the tile files as storage would (cutting.py);
2. the ceiling for the same tiles: a rasterio read of each chunk window, straight into the
   (h, w, bands) layout Pillow takes, plus one Pillow encode per cell with the same options,
   timed apart and summed, at 1 and 2 processes (cutting.ceiling_chunk says what exactly);
3. the product's own ingest from command to ready: migrate, create_project, ingest_imagery
   --wait with a real `celery worker --concurrency=2` on the embedded filesystem broker
   (product.py);
4. GDAL's gdal2tiles at the native zoom, --processes=2 --tiledriver=WEBP;
5. WebP (methods 0-4) and JPEG at quality 80 and 85: bytes, encode time and PSNR per tile;
6. whether converting a striped upload to a tiled copy pays (choices.py).

At 2 processes the tiler and the ceiling run three times each, alternating, and the best
pass of each counts; a pass during which other processes took over a tenth of the CPUs
is flagged and adds rounds (up to five). All rates are megapixels of source per second of
wall time. The last line is
`tiler_mpx_s=… ceiling_mpx_s=… ingest_mpx_s=… gdal2tiles_mpx_s=… ratio_vs_ceiling=… ratio_vs_gdal2tiles=…`
at 2 processes. Everything is written under one temporary folder, removed at the end.
"""
