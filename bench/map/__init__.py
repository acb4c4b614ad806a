"""Map benchmark: `python -m bench.map` from the repository root.

The coordinators' consensus map under load, on the platform as in production on this machine:

- a private PostgreSQL database (bench_map, dropped and created), a private Redis database (flushed) as
  the Django cache the overlays' grouped cells live in and as the Celery broker, gunicorn with
  platform/gunicorn.conf.py and DEBUG off, static files collected and served by whitenoise, and one Celery
  worker, which checks and rebuilds the project's map state as in production;
- fixture.py: a project of 200,000 tiles (a 500 x 400 grid of 256 px tiles of 0.3 m imagery, 34 x 27 km),
  80 % of them with a consensus row, 50,000 destroyed buildings clustered in damage hot spots, COPY'd in;
  two dates of real imagery (the generated 1 km demo scene, 2048 px GeoTIFFs) as ready layers;
- load.py: 50 simulated coordinators in one asyncio + aiohttp process, each panning and zooming a
  1366 x 768 screen. The load model is people, not a closed loop: after a move a coordinator's browser
  fetches what the map page fetches for the view (overlays first, then imagery) over at most 6
  connections, as a browser does to one host, then the person looks for a pause drawn from an
  exponential of mean ``--think`` seconds (2 s by default: a short look). ``--think 0`` removes the
  pause, a saturating closed loop in which even the static file's latency is a queue's;
- cpu.py of bench.volunteers: where the two cores went in each window.

Phases: imagery tiles rendered on request (every tile new), the same tiles served from storage, then
the map: overlays at city, district and street zoom, buildings, imagery, and a static file served by the
same gunicorn in the same requests' company as the reference. It prints requests/s, p50 and p99 per
kind, their ratios to the static file, CPU per process group, and whether an overlay request stays under
100 ms at p99 at every zoom. The last line is machine-readable.
"""
