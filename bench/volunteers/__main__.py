"""python -m bench.volunteers [--volunteers 50,200,500] [--think 5] [--saturation ...]: see __init__.py."""

import argparse
import json
import os
import signal
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

import numpy as np

from bench.volunteers import cpu, services

P99_TARGET_MS = 50.0
RATIO_TARGET = 0.4
SECONDS_PER_TILE = 8  # what each simulated volunteer says it spent (over MIN_SECONDS_PER_TILE: every vote counts)
EXPECTED = {"next": {200, 204}, "submit": {200, 201}, "json": {200}, "vote": {201}}  # submit 200: a replay


def levels(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part.strip()]


def arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.volunteers", description=__doc__,
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--volunteers", type=levels, default="50,200,500",
                        help="volunteer counts with think time")
    parser.add_argument("--think", type=float, default=5.0,
                        help="mean think time in s (exponential) at those counts; 0 saturates them too")
    parser.add_argument("--warmup", type=float, default=10.0, help="warm-up s before each think-time window")
    parser.add_argument("--measure", type=float, default=40.0, help="measured s per think-time level")
    parser.add_argument("--saturation", type=levels, default="8,32,64,128",
                        help="concurrent volunteers with think time 0")
    parser.add_argument("--sat-warmup", type=float, default=5.0, help="warm-up s before each saturation window")
    parser.add_argument("--sat-measure", type=float, default=20.0, help="measured s per saturation level")
    parser.add_argument("--floor", type=levels, default="32,64",
                        help="concurrent volunteers with think time 0 on the floor's views (bench/volunteers/floor.py)")
    parser.add_argument("--ceiling", type=levels, default="8,32", help="concurrency levels of the two ceilings")
    parser.add_argument("--ceiling-warmup", type=float, default=3.0, help="warm-up s before each ceiling window")
    parser.add_argument("--ceiling-measure", type=float, default=12.0, help="measured s per ceiling level")
    parser.add_argument("--tiles", type=int, default=20_000, help="tiles in the project")
    parser.add_argument("--gold", type=int, default=200, help="gold tiles among them")
    parser.add_argument("--redundancy", type=int, default=5, help="distinct volunteers per tile")
    parser.add_argument("--web-workers", type=int, default=2, help="gunicorn worker processes (WEB_CONCURRENCY)")
    parser.add_argument("--web-threads", type=int, default=8, help="threads per gunicorn worker (WEB_THREADS)")
    parser.add_argument("--max-requests", type=int, default=None,
                        help="override gunicorn's max_requests (platform/gunicorn.conf.py's), with a jitter of a "
                             "fifth of it; 0 turns worker recycling off")
    parser.add_argument("--celery-concurrency", type=int, default=1, help="processes of the one Celery worker")
    parser.add_argument("--database", default="bench_volunteers", help="private PostgreSQL database, recreated")
    parser.add_argument("--redis-db", type=int, default=14, help="private Redis database number, flushed")
    parser.add_argument("--port", type=int, default=0, help="gunicorn's port on 127.0.0.1; 0 picks a free one")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--no-autovacuum-stand-in", action="store_true",
                        help="where the server has autovacuum off, leave it so (services.AutovacuumStandIn)")
    return parser.parse_args(argv)


def crowd(args: argparse.Namespace) -> int:
    """How many volunteers the fixture needs: one account per simulated volunteer of the largest level of any
    phase that runs volunteers (the floor's included), at least one."""
    return max([*args.volunteers, *args.saturation, *args.floor], default=1)


@dataclass(frozen=True)
class Outcome:
    """One phase: rates and latencies over its measurement window, statuses over the whole phase."""

    kind: str
    concurrency: int
    think_s: float
    measure_s: float
    result: dict[str, Any]
    cpu: dict[str, float]
    queue_at_end: int
    worker_drain_s: float
    restarts: int  # gunicorn workers that were recycled (booted anew) during the window

    @property
    def votes_per_s(self) -> float:
        return self.result["window_votes"] / self.measure_s

    @property
    def requests_per_s(self) -> float:
        return self.result["window_requests"] / self.measure_s

    def percentiles(self, endpoint: str) -> tuple[float, float]:
        values = self.result["latencies"][endpoint]
        if not values:
            return float("nan"), float("nan")
        p50, p99 = np.percentile(values, [50, 99])
        return float(p50), float(p99)

    @property
    def bad(self) -> int:
        """Responses with a status this endpoint should never give, plus transport errors."""
        unexpected = sum(n for key, n in self.result["statuses"].items()
                         if int(key.split()[1]) not in EXPECTED[key.split()[0]])
        return unexpected + sum(self.result["errors"].values())


class Run:
    """The processes and data of one benchmark run; phases run one after another on them."""

    def __init__(self, args: argparse.Namespace, tmp: Path) -> None:
        self.args, self.tmp = args, tmp
        port = args.port or services.free_port()
        self.config = services.Config(args.database, args.redis_db, port, args.web_workers, args.web_threads,
                                      args.max_requests, args.celery_concurrency, tmp / "data")
        self.env = services.environment(self.config)
        self.gunicorn = self.celery = None
        self.autovacuum: services.AutovacuumStandIn | None = None
        self.server_autovacuum = ""  # the server's setting, read at start
        self.fixture: Any = None
        self.phases = 0
        self.vote_offset = 0

    def start(self) -> None:
        services.recreate_database(self.config.database)
        services.flush_redis(self.config.redis_db)
        os.environ.update(self.env)  # this process reads and checks the same database through Django
        import django

        django.setup()
        from bench.volunteers import fixture

        self.fixture = fixture.build(tiles=self.args.tiles, gold=self.args.gold, volunteers=crowd(self.args),
                                     redundancy=self.args.redundancy, seed=self.args.seed)
        from django.db import connection

        connection.close()
        database = f"{services.PG}/{self.config.database}"
        settings = services.autovacuum_settings(database)
        self.server_autovacuum = settings["autovacuum"]
        if settings["autovacuum"] != "on" and not self.args.no_autovacuum_stand_in:
            self.autovacuum = services.AutovacuumStandIn(database, settings)
            self.autovacuum.start()
        self.gunicorn = services.start_gunicorn(self.config, self.env, self.tmp / "gunicorn.log")
        self.celery = services.start_celery(self.config.celery_concurrency, self.env, self.tmp / "celery.log")

    def phase(self, kind: str, concurrency: int, think: float, warmup: float, measure: float) -> Outcome:
        """One load-generator process for one phase; samples /proc over its window; waits for the worker after."""
        self.phases += 1
        spec = {"kind": kind, "concurrency": concurrency, "think_s": think, "warmup_s": warmup,
                "measure_s": measure, "base_url": self.config.base_url, "slug": "bench-volunteers",
                "volunteers": self.fixture.volunteers[:concurrency], "answers": self.fixture.answers,
                "seconds": SECONDS_PER_TILE, "seed": self.args.seed * 1000 + self.phases,
                "tiles": self.fixture.tile_ids, "vote_offset": self.vote_offset,
                "api": "/api/bench-floor" if kind == "floor" else "/api/v1"}
        self.vote_offset += 1_000_000
        spec_path, result_path = self.tmp / f"phase-{self.phases}.json", self.tmp / f"result-{self.phases}.json"
        spec_path.write_text(json.dumps(spec))
        client = services.start_client(spec_path, result_path, self.env)
        roots = {"gunicorn": self.gunicorn.pid, "celery": self.celery.pid, "client": client.pid}
        before, started, shares, queue, boots = None, 0.0, {}, 0, 0
        for line in client.stdout:
            if line.startswith("window-start"):
                before, started, boots = cpu.sample(), time.perf_counter(), self.boots()
            elif line.startswith("window-end") and before is not None:
                shares = cpu.shares(before, cpu.sample(), time.perf_counter() - started, roots, self.config.database)
                queue = services.queue_depth(self.config.redis_db)
                boots = self.boots() - boots
        client.wait()
        services.stop(client)
        if client.returncode:
            raise RuntimeError(f"the load generator failed ({client.returncode}) in phase {self.phases}")
        waited, left = services.wait_for_queue(self.config.redis_db, timeout=120)
        if left:
            print(f"  WARNING: {left} tasks still queued after {waited:.0f} s")
        return Outcome(kind, concurrency, think, measure, json.loads(result_path.read_text()), shares, queue, waited,
                       boots)

    def boots(self) -> int:
        """gunicorn workers booted so far: the first ones, then one per recycled worker (max_requests)."""
        return (self.tmp / "gunicorn.log").read_text().count("Booting worker with pid")


def main(argv: list[str] | None = None) -> int:
    args = arguments(argv)

    def terminate(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, terminate)
    signal.signal(signal.SIGINT, terminate)  # also where a non-interactive shell started us with SIGINT ignored
    with tempfile.TemporaryDirectory(prefix="bench-volunteers-") as tmp:
        run = Run(args, Path(tmp))
        try:
            return bench(run)
        except KeyboardInterrupt:
            print("\ninterrupted: stopping every process this run started")
            return 130
        finally:
            signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the clean-up short
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            if run.autovacuum is not None:
                run.autovacuum.stop()
            services.stop_all()


def bench(run: Run) -> int:
    args = run.args
    pg, rd = services.server_versions(run.config)
    print(f"bench.volunteers: PostgreSQL {pg} (database {args.database}, recreated), Redis {rd} (db {args.redis_db}, "
          f"flushed; Celery broker and Django cache), {os.cpu_count()} CPUs")
    print(f"  machine before the run: {machine_busy():.0%} of the CPUs busy")
    print("  flags: " + " ".join(f"--{k.replace('_', '-')}={','.join(map(str, v)) if isinstance(v, list) else v}"
                                 for k, v in vars(args).items()))
    recycling = ("preloaded app, max_requests {:,} + jitter {:,}".format(*services.gunicorn_recycling())
                 if args.max_requests is None
                 else f"--max-requests={args.max_requests} + jitter {args.max_requests // 5:,}"
                 + (" (off)" if args.max_requests == 0 else ""))
    print(f"  gunicorn: {args.web_workers} workers x {args.web_threads} threads, gthread (platform/gunicorn.conf.py, "
          f"keepalive 2 s, access log on, {recycling}): two processes so that Python can use both cores, threads "
          f"to overlap the waits on PostgreSQL and Redis; "
          f"celery: 1 worker, --concurrency={args.celery_concurrency}")
    print(f"  SUBMIT_RATE={services.SUBMIT_RATE}: the submit throttle is raised so the benchmark is not throttled "
          "(production default 120/min per volunteer); the throttle still runs, against Redis")
    print("  client: one asyncio + aiohttp process beside the server, on the same 2 cores (its CPU share is shown)")
    started = time.perf_counter()
    run.start()
    fx = run.fixture
    print(f"  setup: migrate {fx.migrate_s:.1f} s; project with redundancy {fx.redundancy}, {len(fx.tile_ids):,} tiles "
          f"({len(fx.gold_ids)} gold) x 2 dates, {len(fx.volunteers)} volunteers with tokens: {fx.populate_s:.1f} s; "
          f"servers up {time.perf_counter() - started:.1f} s after the start")
    stand_in = run.autovacuum
    if stand_in is not None:
        vacuuming = (f"off on this server, so the benchmark stands in for it (services.AutovacuumStandIn): every "
                     f"{stand_in.naptime:g} s it vacuums each table that autovacuum's thresholds, read from the "
                     f"server, say is due; production runs autovacuum, and without it every phase would pay for the "
                     f"dead rows of those before")
    else:
        vacuuming = ("on" if run.server_autovacuum == "on"
                     else "off on this server, and no stand-in (--no-autovacuum-stand-in)")
    print(f"  PostgreSQL's autovacuum: {vacuuming}")

    print(f"\n[1] ceilings on the same gunicorn: closed loops, {args.ceiling_warmup:g} s warm-up + "
          f"{args.ceiling_measure:g} s measured")
    ceilings = {kind: [run.phase(kind, c, 0, args.ceiling_warmup, args.ceiling_measure) for c in args.ceiling]
                for kind in ("json", "vote")}
    print_header("concurrency", ("req/s", "p50 ms", "p99 ms"))
    for kind, outcomes in ceilings.items():
        for o in outcomes:
            print_row(f"{'JSON view' if kind == 'json' else 'bare vote'} {o.concurrency:>4}",
                      [f"{o.requests_per_s:,.0f}", *(f"{v:.1f}" for v in o.percentiles(kind))], o)

    print(f"\n[2] volunteers with think time (exponential, mean {args.think:g} s): {args.warmup:g} s warm-up + "
          f"{args.measure:g} s measured")
    thinking = [run.phase("volunteers", n, args.think, args.warmup, args.measure) for n in args.volunteers]
    print_volunteers("volunteers", thinking)

    # The machine's speed drifts over minutes (shared hosts): each saturation level follows a bare vote window of its
    # own, so that the ratio can also be read against a reference measured next to it.
    reference = max(ceilings["vote"], key=lambda o: o.requests_per_s).concurrency if ceilings["vote"] else None
    print(f"\n[3] saturation (--think 0): {args.sat_warmup:g} s warm-up + {args.sat_measure:g} s measured"
          + (f"; each level just after a bare vote window at {reference} concurrent ({args.ceiling_warmup:g} s + "
             f"{args.ceiling_measure:g} s)" if reference else ""))
    saturated, adjacent = [], []
    for n in args.saturation:
        if reference:
            adjacent.append(run.phase("vote", reference, 0, args.ceiling_warmup, args.ceiling_measure))
        saturated.append(run.phase("volunteers", n, 0, args.sat_warmup, args.sat_measure))
    print_volunteers("concurrent", saturated)
    if adjacent:
        print("  against the bare vote view just before: " + ", ".join(
            f"{o.concurrency}: {o.votes_per_s / a.requests_per_s:.2f} (bare {a.requests_per_s:,.0f} req/s)"
            for o, a in zip(saturated, adjacent)))

    print(f"\n[4] the floor (bench/volunteers/floor.py: the API's SQL from the thinnest Django views, no DRF), "
          f"--think 0: {args.sat_warmup:g} s warm-up + {args.sat_measure:g} s measured")
    floor = [run.phase("floor", n, 0, args.sat_warmup, args.sat_measure) for n in args.floor]
    print_volunteers("concurrent", floor)

    return report(run, ceilings, thinking, saturated, floor, adjacent)


def print_cpu_budget(saturated: list[Outcome], bare: list[Outcome], where: str = "") -> None:
    """CPU time per vote and per bare vote request, by process group: what the ratio target asks of a vote.

    The ratio compares a vote (two requests) with one bare request; on a saturated machine it is their CPU
    costs' inverse ratio. Windows in which a gunicorn worker was recycled undercount its CPU, so the best
    window without one is used when there is one.
    """
    def pick(outcomes: list[Outcome], rate: Callable[[Outcome], float]) -> Outcome:
        whole = [o for o in outcomes if not o.restarts] or outcomes
        return max(whole, key=rate)

    def per_unit(o: Outcome, per_s: float) -> tuple[float, str]:
        ms = {g: o.cpu.get(g, 0.0) * 1000 / per_s for g in cpu.GROUPS}
        return sum(ms.values()), ", ".join(f"{g} {v:.2f}" for g, v in ms.items())

    vote, request = pick(saturated, lambda o: o.votes_per_s), pick(bare, lambda o: o.requests_per_s)
    vote_ms, vote_parts = per_unit(vote, vote.votes_per_s)
    request_ms, request_parts = per_unit(request, request.requests_per_s)
    label = f"CPU per vote{' ' + where if where else ''} at {vote.concurrency} volunteers"
    print(f"{label}: {vote_ms:.2f} ms ({vote_parts}); per bare vote request "
          f"at {request.concurrency}: {request_ms:.2f} ms ({request_parts}); a vote costs {vote_ms / request_ms:.1f} "
          f"bare requests (the ratio {RATIO_TARGET} asks at most {1 / RATIO_TARGET:.1f})"
          + ("; a worker was recycled in a window used here, so gunicorn's CPU is undercounted"
             if vote.restarts or request.restarts else ""))


def report(run: Run, ceilings: dict[str, list[Outcome]], thinking: list[Outcome], saturated: list[Outcome],
           floor: list[Outcome], adjacent: list[Outcome]) -> int:
    """adjacent: the bare vote windows run just before each saturation level, in the same order."""
    from bench.volunteers import fixture, views

    args, fx = run.args, run.fixture
    everything = [*ceilings["json"], *ceilings["vote"], *adjacent, *thinking, *saturated, *floor]
    json_rps = max(o.requests_per_s for o in ceilings["json"])
    vote_rps = max(o.requests_per_s for o in ceilings["vote"])
    best = max(saturated, key=lambda o: o.votes_per_s) if saturated else None  # none with --saturation ""
    ratio = best.votes_per_s / vote_rps if best else 0.0
    # The p99 target is read at 500 volunteers, or at the largest level run; a saturation-only run has none.
    at_500 = next((o for o in thinking if o.concurrency == 500), thinking[-1] if thinking else None)
    p99_next, p99_submit = (at_500.percentiles("next")[1], at_500.percentiles("submit")[1]) if at_500 else (0, 0)
    print(f"\nceilings: JSON view {json_rps:,.0f} req/s, bare vote view {vote_rps:,.0f} req/s (best level of each)")
    if best:
        print(f"saturated: {best.votes_per_s:,.0f} votes/s at {best.concurrency} concurrent volunteers "
              f"(2 requests per vote: {best.requests_per_s:,.0f} req/s)")
    # The same target read against the bare view measured just before each level. The median over the levels is the
    # figure: a pair's two windows still see different moments of a noisy machine, and their best would pick noise.
    pairs = [(o.votes_per_s / a.requests_per_s, o) for o, a in zip(saturated, adjacent)]
    adjacent_ratio = float(np.median([r for r, _ in pairs])) if pairs else 0.0
    if pairs:
        top, top_level = max(pairs, key=lambda pair: pair[0])
        print(f"against the bare vote view measured just before each level: median over levels {adjacent_ratio:.2f} "
              f"(best {top:.2f} at {top_level.concurrency} volunteers); bare vote view over the run: "
              f"{min(a.requests_per_s for a in [*ceilings['vote'], *adjacent]):,.0f} to "
              f"{max(a.requests_per_s for a in [*ceilings['vote'], *adjacent]):,.0f} req/s")
    print("targets: " + (f"saturated votes/s / bare vote req/s = {ratio:.2f} "
                         f"(>= {RATIO_TARGET} {verdict(ratio >= RATIO_TARGET)}); " if best
                         else "no saturation level was run (--saturation); ")
          + (f"p99 at {at_500.concurrency} volunteers: next-tile {p99_next:.1f} ms, submit {p99_submit:.1f} ms "
             f"(< {P99_TARGET_MS:g} ms {verdict(max(p99_next, p99_submit) < P99_TARGET_MS)})" if at_500
             else "no level with think time was run (--volunteers)"))

    if best:
        print_cpu_budget(saturated, ceilings["vote"])
    lowest = max(floor, key=lambda o: o.votes_per_s) if floor else None
    if lowest:
        reached = f"; the API reaches {best.votes_per_s / lowest.votes_per_s:.0%} of it" if best else ""
        print(f"floor: {lowest.votes_per_s:,.0f} votes/s at {lowest.concurrency} concurrent volunteers, "
              f"{lowest.votes_per_s / vote_rps:.2f} of the bare vote view's req/s: about the most a rewrite of the "
              f"API's Python on Django could reach with this SQL{reached}")
        print_cpu_budget(floor, ceilings["vote"], "on the floor's views")

    waited, left = services.wait_for_queue(args.redis_db, timeout=120)
    vacuum_failure = None
    if run.autovacuum is not None:
        run.autovacuum.stop()
        vacuum_failure = run.autovacuum.failure
        print(f"\nautovacuum stand-in: {len(run.autovacuum.runs)} runs during the phases"
              + (f" ({', '.join(run.autovacuum.runs)})" if run.autovacuum.runs else "")
              + (f"; FAILED: {vacuum_failure!r}" if vacuum_failure else ""))
    volunteer_phases = [*thinking, *saturated, *floor]
    stored = [tuple(pair) for o in volunteer_phases for pair in o.result["stored"]]
    handed = [tuple(pair) for o in volunteer_phases for pair in o.result["handed"]]
    checks = fixture.check(fx, stored, handed)
    bare_told = sum(len(o.result["stored"]) for o in [*ceilings["vote"], *adjacent])
    bare_rows = views.count_votes()
    print(f"\nchecks (after the worker's queue emptied: {waited:.1f} s, {left} left):")
    replays = sum(o.result["replays"] for o in volunteer_phases)
    print(f"  votes: clients told stored {checks.told_stored:,} times (201, or 200 for {replays} replays; "
          f"{checks.told_stored_twice} twice for one pair); "
          f"database holds {checks.in_database:,}; told but missing {len(checks.missing)}, stored but never told "
          f"{len(checks.unannounced)} {ok(not (checks.missing or checks.unannounced or checks.told_stored_twice))}")
    if checks.missing or checks.unannounced:
        print(f"    missing {checks.missing[:5]}, unannounced {checks.unannounced[:5]}")
    print(f"  open and retired tiles: most counted votes {checks.most_votes_open} (redundancy {fx.redundancy}), "
          f"{checks.over_redundancy} over it {ok(not checks.over_redundancy)}; gold tiles, which every volunteer "
          f"may see: most {checks.most_votes_gold}")
    print(f"  vote_count = stored counted votes on every tile: {checks.count_mismatch} differ "
          f"{ok(not checks.count_mismatch)}"
          f"; status follows the redundancy: {checks.retired_wrong} do not {ok(not checks.retired_wrong)}")
    print(f"  repeats: tiles handed twice to one volunteer {checks.repeat_handed}, two votes {checks.repeat_votes}, "
          f"two leases {checks.repeat_leases} "
          f"{ok(not (checks.repeat_handed or checks.repeat_votes or checks.repeat_leases))}")
    print(f"  consensus: {checks.pending} tiles still pending, {checks.consensus_stale} voted tiles whose consensus "
          f"misses a vote {ok(not (checks.pending or checks.consensus_stale))}")
    print(f"  bare vote table: {bare_rows:,} rows for {bare_told:,} 201s {ok(bare_rows == bare_told)}")
    statuses: Counter = Counter()
    errors: Counter = Counter()
    retries: Counter = Counter()
    for o in everything:
        statuses.update(o.result["statuses"])
        errors.update(o.result["errors"])
        retries.update(o.result["retries"])
    print("  status codes: " + ", ".join(f"{k}: {n:,}" for k, n in sorted(statuses.items())))
    print("  transport errors: " + (", ".join(f"{k}: {n}" for k, n in sorted(errors.items())) or "none")
          + "; sent again after the server dropped the connection: "
          + (", ".join(f"{k}: {n}" for k, n in sorted(retries.items())) or "none"))
    nothing_left = sum(o.result["nothing_left"] for o in volunteer_phases)
    if nothing_left:
        print(f"  {nothing_left} volunteers were told nothing is left (204) and stopped")
    print(f"  gunicorn workers recycled during the run (max_requests): {run.boots() - args.web_workers}")
    bad = sum(o.bad for o in everything)
    failures = checks.failures + ([f"{bad} unexpected statuses or transport errors"] if bad else []) + (
        ["bare vote rows differ from its 201s"] if bare_rows != bare_told else []) + (
        [f"the autovacuum stand-in failed: {vacuum_failure!r}"] if vacuum_failure else [])
    print("result: " + ("all checks passed" if not failures else "FAILED: " + "; ".join(failures)))

    figures = {f"votes_s_{o.concurrency}": f"{o.votes_per_s:.1f}" for o in thinking}
    if at_500:
        figures.update({f"p99_next_ms_{at_500.concurrency}": f"{p99_next:.1f}",
                        f"p99_submit_ms_{at_500.concurrency}": f"{p99_submit:.1f}"})
    if best:
        figures.update({"saturated_votes_s": f"{best.votes_per_s:.1f}", "ratio_vs_bare_vote": f"{ratio:.2f}"})
    if pairs:
        figures["ratio_vs_adjacent_bare_vote"] = f"{adjacent_ratio:.2f}"  # the median over the levels
    if lowest:
        figures.update({"floor_votes_s": f"{lowest.votes_per_s:.1f}",
                        "floor_ratio_vs_bare_vote": f"{lowest.votes_per_s / vote_rps:.2f}"})
    figures.update({"json_view_rps": f"{json_rps:.0f}", "bare_vote_rps": f"{vote_rps:.0f}",
                    "checks": "ok" if not failures else "failed"})
    print(" ".join(f"{k}={v}" for k, v in figures.items()))
    return 1 if failures else 0


def print_header(first: str, columns: tuple[str, ...]) -> None:
    print(f"  {first:<16}" + "".join(f"{c:>10}" for c in columns) + "   CPU of 2 cores: gunicorn/postgres/celery/"
          "redis/client/other; tasks queued at the end")


def print_row(label: str, cells: list[str], o: Outcome) -> None:
    shares = "/".join(f"{o.cpu.get(g, 0):.2f}" for g in cpu.GROUPS)
    bad = f"; {o.bad} bad" if o.bad else ""
    restarts = f"; {o.restarts} web worker(s) recycled" if o.restarts else ""
    lag = f" (worker done {o.worker_drain_s:.1f} s later)" if o.worker_drain_s >= 0.5 else ""
    print(f"  {label:<16}" + "".join(f"{c:>10}" for c in cells) + f"   {shares}; {o.queue_at_end}{lag}{bad}{restarts}")


def print_volunteers(label: str, outcomes: list[Outcome]) -> None:
    print_header(label, ("votes/s", "next p50", "next p99", "sub p50", "sub p99"))
    for o in outcomes:
        cells = [f"{o.votes_per_s:,.1f}", *(f"{v:.1f}" for e in ("next", "submit") for v in o.percentiles(e))]
        print_row(f"{o.concurrency:>10}", cells, o)


def machine_busy(seconds: float = 2.0) -> float:
    before = cpu.sample()
    time.sleep(seconds)
    return sum(cpu.shares(before, cpu.sample(), seconds, {}).values()) / (os.cpu_count() or 1)


def verdict(met: bool) -> str:
    return "met" if met else "MISSED"


def ok(passed: bool) -> str:
    return "ok" if passed else "FAILED"


if __name__ == "__main__":
    sys.exit(main())
