"""Volunteers benchmark: `python -m bench.volunteers` from the repository root (`make bench-volunteers`).

It runs the platform as in production on this machine and drives simulated volunteers
through the JSON API, then checks what the database holds:

- services.py: a private PostgreSQL database (dropped and created anew), a private Redis
  database (flushed) as Celery broker and as the cache DRF's throttling shares, gunicorn
  with platform/gunicorn.conf.py (workers and threads are flags), one Celery worker
  consuming the refresh task every vote enqueues; and, where the server runs without
  autovacuum (this team's machines), a stand-in that vacuums the tables when autovacuum would;
- fixture.py: migrate, then an active project with redundancy 5, 20,000 tiles with an
  image row per date (2 dates), some gold tiles, and volunteer accounts with DRF tokens;
- load.py: the load generator in its own process (asyncio + aiohttp); each volunteer loops
  next tile -> answer (marks with a damage answer, 8 s spent) -> exponential think time;
- views.py / urls.py / settings.py: two ceilings served by the same gunicorn, a trivial JSON
  view and a bare vote view (one indexed SELECT, one INSERT, no auth);
- floor.py: the floor, the API's own SQL statements called from the thinnest Django views (no
  DRF, no model instances, no throttle nor input checks in Python), driven like the API at saturation:
  about the most a rewrite of the API's Python on Django could reach with the same SQL;
- cpu.py: where the machine's two cores went in each measurement window.
- inprocess.py (`python -m bench.volunteers.inprocess`): a vote's CPU time in this process and its
  PostgreSQL backend, without HTTP or load: steadier than the saturation figures on a noisy machine.

It prints votes per second and p50/p99 latency of next-tile and submit at 50, 200 and 500
volunteers with think time, votes per second at saturation (think time 0) at a few
concurrency levels, each right after a bare vote window of its own (the machine's speed drifts:
the ratio is also read against that adjacent reference), the same on the floor, the two ceilings,
the target ratios, and the checks: the database holds
exactly the votes whose clients got 201, no open tile has more counted votes than its
redundancy, no volunteer got or voted on a tile twice, every tile's vote_count matches its
votes once the worker is done; and every status code and error. It exits 1 when a check
fails or a request errs. The last line is machine-readable.
"""
