"""python -m bench.volunteers.inprocess: the CPU time of a vote, without HTTP, load or a second core.

A vote (next tile, then the answer) goes through the same WSGI application that gunicorn serves, its whole
token lane and views, in this process, one volunteer at a time, against a private PostgreSQL database built
as bench.volunteers builds its own. Each run reads this process's CPU time and that of its PostgreSQL backend
(/proc) around a number of votes, after a VACUUM ANALYZE, and prints both per vote.

On a shared, noisy machine the saturation figures of bench.volunteers moved by a third from run to run; these
move by about a fifth, and alternating runs of two checkouts (git worktree) compares them: the closing note
of stop 18 did so. --statements adds each SQL statement's share of the backend's CPU time (read around every
statement, so the Python figure then includes the reading).

Needs a PostgreSQL server at 127.0.0.1 (as bench.volunteers); Redis is the cache and broker, as in production.
"""

import argparse
import contextlib
import io
import itertools
import json
import os
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from bench.volunteers import services

TICKS = os.sysconf("SC_CLK_TCK")


def arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.volunteers.inprocess", description=__doc__,
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--votes", type=int, default=1500, help="votes measured per run")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=50, help="votes before the first run (imports, prepares)")
    parser.add_argument("--volunteers", type=int, default=64, help="accounts the votes cycle through")
    parser.add_argument("--tiles", type=int, default=20_000)
    parser.add_argument("--gold", type=int, default=200)
    parser.add_argument("--statements", action="store_true", help="PostgreSQL CPU time per SQL statement")
    parser.add_argument("--database", default="bench_volunteers_inprocess", help="private database, recreated")
    parser.add_argument("--redis-db", type=int, default=13, help="private Redis database number, flushed")
    return parser.parse_args(argv)


def backend_seconds(pid: int) -> float:
    """CPU time (user + system) of a process so far, from /proc/<pid>/stat."""
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()  # noqa: SIM115 (one read)
    return (int(fields[11]) + int(fields[12])) / TICKS


def wsgi_call(app: Callable, method: str, path: str, token: str, body: dict[str, Any]) -> tuple[int, bytes]:
    raw = json.dumps(body).encode()
    environ = {"REQUEST_METHOD": method, "PATH_INFO": path, "QUERY_STRING": "", "SERVER_NAME": "127.0.0.1",
               "SERVER_PORT": "80", "HTTP_HOST": "127.0.0.1", "SERVER_PROTOCOL": "HTTP/1.1",
               "wsgi.url_scheme": "http", "wsgi.input": io.BytesIO(raw), "wsgi.errors": sys.stderr,
               "CONTENT_TYPE": "application/json", "CONTENT_LENGTH": str(len(raw)),
               "HTTP_AUTHORIZATION": f"Token {token}"}
    status = []
    answer = b"".join(app(environ, lambda line, headers, exc_info=None: status.append(line)))
    return int(status[0].split()[0]), answer


def votes(app: Callable, slug: str, tokens: Iterator[str], answer: str) -> Iterator[tuple[int, int]]:
    """(next-tile status, submit status) of one vote after another, each by the next volunteer."""
    for token in tokens:
        status, body = wsgi_call(app, "POST", f"/api/v1/projects/{slug}/tasks/next/", token, {})
        if status != 200:
            yield status, 0
            continue
        tile = json.loads(body)["tile"]["id"]
        yield status, wsgi_call(app, "POST", f"/api/v1/tiles/{tile}/classifications/", token,
                                {"answer": answer, "seconds": 8})[0]


def main(argv: list[str] | None = None) -> int:
    args = arguments(argv)
    config = services.Config(database=args.database, redis_db=args.redis_db, port=0, web_workers=1, web_threads=1,
                             max_requests=None, celery_concurrency=1,
                             data_dir=Path(tempfile.mkdtemp(prefix="bench-inprocess-")))
    os.environ.update(services.environment(config))
    services.recreate_database(args.database)
    services.flush_redis(args.redis_db)
    import django

    django.setup()
    from django.core.wsgi import get_wsgi_application
    from django.db import connection

    from bench.volunteers import fixture

    built = fixture.build(tiles=args.tiles, gold=args.gold, volunteers=args.volunteers, redundancy=5, seed=1)
    app = get_wsgi_application()
    tokens = itertools.cycle([token for _user, token in built.volunteers])
    answer = next(a["key"] for a in built.answers if not a["damage"])
    statuses: Counter = Counter()
    for _, outcome in zip(range(args.warmup), votes(app, fixture.SLUG, tokens, answer)):
        statuses[outcome] += 1
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        backend = cursor.fetchone()[0]
    by_statement: Counter = Counter()

    def timed(execute: Callable, sql: str, params: Any, many: bool, context: dict) -> Any:
        before = backend_seconds(backend)
        try:
            return execute(sql, params, many, context)
        finally:
            by_statement[" ".join(sql.split())[:90]] += backend_seconds(backend) - before

    print(f"bench.volunteers.inprocess: {args.votes} votes per run, {args.volunteers} volunteers in turn, "
          f"{args.tiles:,} tiles ({args.gold} gold), database {args.database}")
    python, postgres, wall = [], [], []
    for run in range(args.runs):
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE")  # each run starts as autovacuum would leave the tables
        started_cpu, started_pg, started = time.process_time(), backend_seconds(backend), time.perf_counter()
        with connection.execute_wrapper(timed) if args.statements else contextlib.nullcontext():
            for _, outcome in zip(range(args.votes), votes(app, fixture.SLUG, tokens, answer)):
                statuses[outcome] += 1
        python.append((time.process_time() - started_cpu) * 1000 / args.votes)
        postgres.append((backend_seconds(backend) - started_pg) * 1000 / args.votes)
        wall.append((time.perf_counter() - started) * 1000 / args.votes)
        print(f"  run {run + 1}: per vote, Python CPU {python[-1]:.3f} ms, PostgreSQL CPU {postgres[-1]:.3f} ms, "
              f"wall {wall[-1]:.3f} ms")
    print(f"median per vote: Python CPU {statistics.median(python):.3f} ms, PostgreSQL CPU "
          f"{statistics.median(postgres):.3f} ms, wall {statistics.median(wall):.3f} ms")
    for sql, seconds in by_statement.most_common(8):
        print(f"  PostgreSQL {seconds * 1000 / (args.votes * args.runs):.3f} ms per vote: {sql}")
    good = statuses[(200, 201)]
    print("statuses (next, submit): " + ", ".join(f"{k}: {n}" for k, n in sorted(statuses.items())))
    return 0 if good == sum(statuses.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
