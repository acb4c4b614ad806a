"""python -m bench.map [--coordinators 50] [--think 2] [--measure 60]: see __init__.py."""

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

import numpy as np
import psycopg
import redis

from bench.map import load
from bench.volunteers import cpu
from bench.volunteers.services import (
    PG,
    REDIS_URL,
    flush_redis,
    free_port,
    recreate_database,
    start,
    start_celery,
    start_gunicorn_at,
    stop,
    stop_all,
)

P99_TARGET_MS = 100.0
STATIC_PATH = "/static/vendor/leaflet-1.9.4/leaflet.css"  # 14 KB, about a tile's or a street view's size
FOREIGN_VARIABLES = ("TILE_BUCKET", "S3_ENDPOINT_URL", "IMAGERY_ROOT", "CELERY_TASK_ALWAYS_EAGER", "DEBUG",
                     "WEB_CONCURRENCY", "WEB_THREADS", "CONN_MAX_AGE", "STATICFILES_BACKEND")
ORDER = ["tiles city", "tiles district", "tiles street", "buildings city", "buildings district", "buildings street",
         "imagery cold", "imagery stored", "imagery rendered", "static"]



def arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.map", description=__doc__,
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--coordinators", type=int, default=50, help="simulated coordinators at once")
    parser.add_argument("--think", type=float, default=2.0,
                        help="mean pause between a coordinator's moves, s (exponential); 0: no pause, a closed "
                             "loop that saturates the server")
    parser.add_argument("--warmup", type=float, default=10.0, help="warm-up s of the map phase")
    parser.add_argument("--measure", type=float, default=60.0, help="measured s of the map phase")
    parser.add_argument("--imagery-measure", type=float, default=20.0, help="measured s of each imagery phase")
    parser.add_argument("--imagery-think", type=float, default=3.0, help="pause between screenfuls of imagery, s")
    parser.add_argument("--cols", type=int, default=500, help="grid columns (tiles = cols x rows)")
    parser.add_argument("--rows", type=int, default=400)
    parser.add_argument("--buildings", type=int, default=50_000)
    parser.add_argument("--raster-px", type=int, default=2048, help="side of the demo scene, 0.5 m pixels")
    parser.add_argument("--no-overviews", action="store_true",
                        help="leave the imagery without the overviews the tiling job builds (to compare)")
    parser.add_argument("--web-workers", type=int, default=2, help="gunicorn worker processes (WEB_CONCURRENCY)")
    parser.add_argument("--web-threads", type=int, default=4, help="threads per gunicorn worker (WEB_THREADS)")
    parser.add_argument("--max-requests", type=int, default=None,
                        help="override gunicorn's max_requests (platform/gunicorn.conf.py); 0 turns worker "
                             "recycling off")
    parser.add_argument("--database", default="bench_map", help="private PostgreSQL database, recreated")
    parser.add_argument("--redis-db", type=int, default=13, help="private Redis database number, flushed")
    parser.add_argument("--port", type=int, default=0, help="gunicorn's port on 127.0.0.1; 0 picks a free one")
    parser.add_argument("--seed", type=int, default=1)
    return parser.parse_args(argv)


@dataclass(frozen=True)
class Outcome:
    name: str
    measure_s: float
    result: dict[str, Any]
    cpu: dict[str, float]
    server: dict[str, list[float]]  # ms inside gunicorn per kind, the whole phase (warm-up included)

    def percentiles(self, category: str) -> tuple[float, float]:
        values = self.result["latencies"].get(category) or []
        if not values:
            return float("nan"), float("nan")
        p50, p99 = np.percentile(values, [50, 99])
        return float(p50), float(p99)

    def count(self, category: str) -> int:
        return len(self.result["latencies"].get(category) or [])

    @property
    def bad(self) -> int:
        wrong = sum(n for key, n in self.result["statuses"].items() if not key.endswith(" 200"))
        return wrong + sum(self.result["errors"].values())


def environment(args: argparse.Namespace, data: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in FOREIGN_VARIABLES}
    env.update(DATABASE_URL=f"{PG}/{args.database}", CACHE_URL=f"{REDIS_URL}/{args.redis_db}",
               CELERY_BROKER_URL=f"{REDIS_URL}/{args.redis_db}", SECRET_KEY="bench-map-only-not-a-secret",
               ALLOWED_HOSTS="127.0.0.1,localhost", DATA_DIR=str(data), DEBUG="False",
               WEB_CONCURRENCY=str(args.web_workers), WEB_THREADS=str(args.web_threads),
               DJANGO_SETTINGS_MODULE="config.settings", LOG_LEVEL="WARNING", PYTHONUNBUFFERED="1",
               NUMEXPR_MAX_THREADS="1",
               # Compressed but not hashed: the vendored leaflet.js names a source map that is not vendored,
               # and the manifest storage's collectstatic refuses that (MissingFileError).
               STATICFILES_BACKEND="whitenoise.storage.CompressedStaticFilesStorage")
    return env


def start_gunicorn(args: argparse.Namespace, env: dict[str, str], base: str, log: Path) -> subprocess.Popen:
    # The access log says how long each request took inside the server (%(L)s, seconds), next to the client's view.
    return start_gunicorn_at(bind=base.removeprefix("http://"), health_url=f"{base}/health/", env=env, log=log,
                             max_requests=args.max_requests,
                             extra=("--access-logformat", 'access %(L)s %(s)s "%(r)s" %(p)s'))


class Run:
    def __init__(self, args: argparse.Namespace, tmp: Path) -> None:
        self.args, self.tmp = args, tmp
        self.base = f"http://127.0.0.1:{args.port or free_port()}"
        self.env = environment(args, tmp / "data")
        self.gunicorn: subprocess.Popen | None = None
        self.celery: subprocess.Popen | None = None
        self.fixture: Any = None
        self.phases = 0
        self.log_offset = 0

    def setup(self) -> float:
        recreate_database(self.args.database)
        flush_redis(self.args.redis_db)
        os.environ.update(self.env)  # this process builds the data through Django, on the same database
        import django

        django.setup()
        from django.core.management import call_command
        from django.db import connection

        from bench.map import fixture
        from config.runtime import ensure_data_dirs

        ensure_data_dirs()
        a = self.args
        self.fixture = fixture.build(cols=a.cols, rows=a.rows, buildings=a.buildings, coordinators=a.coordinators,
                                     raster_px=a.raster_px, seed=a.seed,
                                     overviews=not a.no_overviews)
        started = time.perf_counter()
        call_command("collectstatic", interactive=False, verbosity=0)
        connection.close()
        self.gunicorn = start_gunicorn(a, self.env, self.base, self.tmp / "gunicorn.log")
        # The worker checks and rebuilds the map state when a request finds it STATE_SECONDS old, as in production.
        self.celery = start_celery(1, self.env, self.tmp / "celery.log")
        return time.perf_counter() - started

    def server_times(self) -> dict[str, list[float]]:
        """Milliseconds each request spent inside gunicorn since the last call, by kind (from the access log)."""
        with open(self.tmp / "gunicorn.log", errors="replace") as log:
            log.seek(self.log_offset)
            lines = log.read().splitlines()
            self.log_offset = log.tell()
        times: dict[str, list[float]] = {}
        for line in lines:
            parts = line.split(" ", 3)
            if len(parts) < 4 or parts[0] != "access":
                continue
            path = parts[3]
            kind = ("imagery" if "/xyz/" in path else "tiles" if "/map/tiles" in path
                    else "buildings" if "/map/buildings" in path else "static" if "/static/" in path else "other")
            zoom = re.search(r"[?&]zoom=(\d+)", path)
            if kind in ("tiles", "buildings") and zoom:
                kind += " " + load.zoom_class(int(zoom.group(1)))
            times.setdefault(kind, []).append(float(parts[1]) * 1000)
        return times

    def boots(self) -> int:
        """gunicorn workers booted so far: the first ones, then one per recycled worker (max_requests)."""
        return (self.tmp / "gunicorn.log").read_text().count("Booting worker with pid")

    def get(self, path: str) -> tuple[float, bytes]:
        request = urllib.request.Request(self.base + path, headers={"Authorization": f"Token {self.fixture.tokens[0]}"})
        sent = time.perf_counter()
        with urllib.request.urlopen(request, timeout=60) as response:
            body = response.read()
        return (time.perf_counter() - sent) * 1000, body

    def phase(self, name: str, spec: dict[str, Any]) -> Outcome:
        self.phases += 1
        spec = {"base_url": self.base, "slug": "bench-map", "tokens": self.fixture.tokens,
                "layers": self.fixture.layers, "extent": list(self.fixture.extent), "static_path": STATIC_PATH,
                "seed": self.args.seed * 1000 + self.phases, **spec}
        spec_path, result_path = self.tmp / f"phase-{self.phases}.json", self.tmp / f"result-{self.phases}.json"
        spec_path.write_text(json.dumps(spec))
        client = start([sys.executable, "-m", "bench.map.load", str(spec_path), str(result_path)], self.env)
        roots = {"gunicorn": self.gunicorn.pid, "celery": self.celery.pid, "client": client.pid}
        before, started, shares = None, 0.0, {}
        for line in client.stdout:
            if line.startswith("window-start"):
                before, started = cpu.sample(), time.perf_counter()
            elif line.startswith("window-end") and before is not None:
                shares = cpu.shares(before, cpu.sample(), time.perf_counter() - started, roots, self.args.database)
        client.wait()
        stop(client)
        if client.returncode:
            raise RuntimeError(f"the load generator failed ({client.returncode}) in phase {name}")
        time.sleep(0.5)  # the access log's last lines
        return Outcome(name, spec["measure_s"], json.loads(result_path.read_text()), shares, self.server_times())


def main(argv: list[str] | None = None) -> int:
    args = arguments(argv)

    def terminate(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, terminate)
    signal.signal(signal.SIGINT, terminate)
    with tempfile.TemporaryDirectory(prefix="bench-map-") as tmp:
        run = Run(args, Path(tmp))
        try:
            return bench(run)
        except KeyboardInterrupt:
            print("\ninterrupted: stopping every process this run started")
            return 130
        finally:
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            stop_all()


def versions(args: argparse.Namespace) -> tuple[str, str]:
    with psycopg.connect(f"{PG}/postgres") as conn:
        pg = conn.execute("SHOW server_version").fetchone()[0]
    return pg, redis.Redis.from_url(f"{REDIS_URL}/{args.redis_db}").info("server")["redis_version"]


def bench(run: Run) -> int:
    args = run.args
    pg, rd = versions(args)
    print(f"bench.map: PostgreSQL {pg} (database {args.database}, recreated), Redis {rd} (db {args.redis_db}, "
          f"flushed: the Django cache), {os.cpu_count()} CPUs; machine before the run: {machine_busy():.0%} busy")
    print("  flags: " + " ".join(f"--{k.replace('_', '-')}={v}" for k, v in vars(args).items()))
    print(f"  gunicorn: {args.web_workers} workers x {args.web_threads} threads, gthread (platform/gunicorn.conf.py), "
          "DEBUG off, token auth; client: one asyncio + aiohttp process on the same 2 cores")
    started = time.perf_counter()
    server_s = run.setup()
    fx = run.fixture
    t = fx.timings
    print(f"  data: {fx.tiles:,} tiles ({args.cols} x {args.rows}), {fx.judged:,} with a consensus, "
          f"{fx.buildings:,} buildings, "
          f"{len(fx.tokens)} coordinators; imagery: 2 dates of a {args.raster_px} px scene "
          f"({'WITHOUT' if args.no_overviews else 'with'} overviews), zooms "
          f"{fx.layers[-1]['minzoom']}-{fx.layers[-1]['maxzoom']}")
    print(f"  setup: migrate {t['migrate']:.1f} s, tiles + consensus {t['tiles']:.1f} s, buildings "
          f"{t['buildings']:.1f} s, imagery {t['imagery']:.1f} s, static + gunicorn {server_s:.1f} s; "
          f"{time.perf_counter() - started:.0f} s in all")

    print("\n[0] one coordinator alone, whole project in view (city-wide); the first request builds the project's map "
          "state (tagging/map_state.py; a consensus run publishes one, the fixture ran none), the second uses it:")
    w, s, e, n = fx.extent
    for zoom in (11, 12, 13):
        bbox = f"{w:.5f},{s:.5f},{e:.5f},{n:.5f}"
        path = f"/api/v1/projects/bench-map/map/tiles.geojson?bbox={bbox}&zoom={zoom}"
        cold, body = run.get(path)
        warm, _ = run.get(path)
        props = json.loads(body)["properties"]
        print(f"  tiles zoom {zoom}: {props['count']:,} cells of {props['cell_tiles']} x {props['cell_tiles']} tiles "
              f"({len(body) / 1024:,.0f} KB): {cold:,.0f} ms, then {warm:,.0f} ms")
    bpath = f"/api/v1/projects/bench-map/map/buildings.geojson?bbox={w:.5f},{s:.5f},{e:.5f},{n:.5f}&zoom=12"
    cold, body = run.get(bpath)
    warm, _ = run.get(bpath)
    props = json.loads(body)["properties"]
    print(f"  buildings zoom 12: {props['buildings']:,} in {props['count']:,} clusters ({len(body) / 1024:,.0f} KB): "
          f"{cold:,.0f} ms, then {warm:,.0f} ms")

    layer = fx.layers[0]  # the other date: the phases below never ask for its tiles
    lon, lat = (layer["bounds"][0] + layer["bounds"][2]) / 2, (layer["bounds"][1] + layer["bounds"][3]) / 2
    timings = []
    for z in range(layer["minzoom"], layer["maxzoom"] + 1):
        x, y = (int(v // 256) for v in load.to_pixels(lon, lat, z))
        path = load.tile_url(layer, z, x, y)
        rendered, body = run.get(path)
        stored, _ = run.get(path)
        timings.append(f"z{z} {rendered:,.0f}/{stored:,.0f}")
    print(f"  imagery tile, rendered/from storage, ms: {', '.join(timings)} ({len(body) / 1024:.0f} KB at z{z})")

    run.server_times()  # what [0] asked is not part of the phases
    views = load.screenfuls(fx.layers[-1])
    tiles = sum(len(v[1]) for v in views)
    print(f"\n[1] imagery rendered on request: {args.coordinators} coordinators each take the next screenful nobody "
          f"has seen ({tiles:,} tiles in {len(views)} screenfuls over zooms {fx.layers[-1]['minzoom']}-"
          f"{fx.layers[-1]['maxzoom']}), 6 at a time, {args.imagery_think:g} s pause; 3 s warm-up + "
          f"{args.imagery_measure:g} s")
    cold = run.phase("imagery cold", {"kind": "imagery-cold", "concurrency": args.coordinators, "views": views,
                                      "think_s": args.imagery_think, "warmup_s": 3.0,
                                      "measure_s": args.imagery_measure})
    table([cold], ["imagery cold", "static"])
    done = cold.result["done"]
    print(f"\n[2] the same imagery from storage: random screenfuls among the {len(done)} the cold phase finished; "
          f"2 s warm-up + {args.imagery_measure:g} s")
    stored = run.phase("imagery stored", {"kind": "imagery-stored", "concurrency": args.coordinators, "views": views,
                                          "done": done, "think_s": args.imagery_think, "warmup_s": 2.0,
                                          "measure_s": args.imagery_measure})
    table([stored], ["imagery stored", "static"])

    print(f"\n[3] {args.coordinators} coordinators panning and zooming (zoom 11-19); {args.warmup:g} s warm-up + "
          f"{args.measure:g} s")
    print(f"  load model: {load_model(args.think)}")
    browsing = run.phase("map", {"kind": "map", "concurrency": args.coordinators, "think_s": args.think,
                                 "warmup_s": args.warmup, "measure_s": args.measure})
    table([browsing], [c for c in ORDER if browsing.count(c)])
    print(f"  moves: {browsing.result['moves']:,}; zoom classes: city <= 13 < district <= 15 < street")
    print(f"  gunicorn workers recycled during the run (max_requests): {run.boots() - args.web_workers}; CPU of "
          "workers that ended inside a window is not counted above")
    return report(run, cold, stored, browsing)


def load_model(think: float) -> str:
    each = (f"each coordinator makes a move, its browser fetches what the map page fetches for the view (the "
            f"two overlays first, then the imagery tiles it has not cached and the static file) over at most "
            f"{load.BROWSER_CONNECTIONS} connections at once, as a browser does to one host (a latency runs from "
            f"the request going out on one)")
    if think > 0:
        return each + f", then the person looks for a pause drawn from an exponential of mean {think:g} s"
    return each + ", then moves again at once (--think 0: a closed loop, saturating the server, not people)"


def table(outcomes: list[Outcome], categories: list[str]) -> None:
    print(f"  {'':<20}{'requests':>9}{'req/s':>8}{'p50 ms':>9}{'p99 ms':>9}{'p50/static':>11}{'p99/static':>11}"
          f"{'KB':>7}{'grouped':>9}")
    for o in outcomes:
        s50, s99 = o.percentiles("static")
        for c in categories:
            n = o.count(c)
            if not n:
                continue
            p50, p99 = o.percentiles(c)
            grouped = o.result["aggregated"].get(c, 0)
            kb = o.result["sizes"].get(c, 0) / 1024
            print(f"  {c:<20}{n:>9,}{n / o.measure_s:>8.1f}{p50:>9.1f}{p99:>9.1f}{p50 / s50:>11.1f}{p99 / s99:>11.1f}"
                  f"{kb:>7.1f}{(f'{grouped / n:.0%}' if c.startswith(('tiles', 'buildings')) else ''):>9}")
        inside = ", ".join(f"{kind} {np.percentile(v, 50):.1f}/{np.percentile(v, 99):.1f}"
                           for kind, v in sorted(o.server.items()) if v and kind != "other")
        print(f"  inside gunicorn, p50/p99 ms (whole phase, from its access log): {inside}")
        total = sum(len(v) for v in o.result["latencies"].values())
        shares = ", ".join(f"{g} {o.cpu.get(g, 0):.2f}" for g in cpu.GROUPS)
        print(f"  all: {total / o.measure_s:,.0f} req/s; CPU (cores of 2): {shares}; client CPU "
              f"{o.result['cpu_s']:.1f} s" + (f"; {o.bad} bad responses" if o.bad else ""))


def report(run: Run, cold: Outcome, stored: Outcome, browsing: Outcome) -> int:
    overlays = [c for c in ORDER if c.startswith(("tiles", "buildings")) and browsing.count(c)]
    worst = max(overlays, key=lambda c: browsing.percentiles(c)[1])
    worst_p99 = browsing.percentiles(worst)[1]
    met = worst_p99 < P99_TARGET_MS
    print(f"\ntarget: p99 of an overlay request under {P99_TARGET_MS:g} ms at every zoom: worst is {worst} at "
          f"{worst_p99:.1f} ms ({'met' if met else 'MISSED'})")
    bad = cold.bad + stored.bad + browsing.bad
    statuses: dict[str, int] = {}
    for o in (cold, stored, browsing):
        for key, n in o.result["statuses"].items():
            statuses[key] = statuses.get(key, 0) + n
    print("status codes: " + ", ".join(f"{k}: {n:,}" for k, n in sorted(statuses.items())))
    errors = {k: n for o in (cold, stored, browsing) for k, n in o.result["errors"].items()}
    print("transport errors: " + (", ".join(f"{k}: {n}" for k, n in sorted(errors.items())) or "none"))
    figures = {"p99_worst_overlay_ms": f"{worst_p99:.1f}"}
    for c in overlays + ["imagery stored", "imagery rendered", "static"]:
        if browsing.count(c):
            figures[f"p99_map_{c.replace(' ', '_')}_ms"] = f"{browsing.percentiles(c)[1]:.1f}"
    figures.update({"p99_imagery_cold_ms": f"{cold.percentiles('imagery cold')[1]:.1f}",
                    "p99_imagery_stored_ms": f"{stored.percentiles('imagery stored')[1]:.1f}",
                    "imagery_cold_rps": f"{cold.count('imagery cold') / cold.measure_s:.1f}",
                    "target": "met" if met else "missed", "bad": str(bad)})
    print(" ".join(f"{k}={v}" for k, v in figures.items()))
    return 0 if not bad else 1


def machine_busy(seconds: float = 2.0) -> float:
    before = cpu.sample()
    time.sleep(seconds)
    return sum(cpu.shares(before, cpu.sample(), seconds, {}).values()) / (os.cpu_count() or 1)


if __name__ == "__main__":
    sys.exit(main())
