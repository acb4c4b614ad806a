"""The platform as in production, on this machine: a private PostgreSQL database, a private Redis
database, gunicorn with platform/gunicorn.conf.py, one Celery worker; and their clean-up.

Every process is started in a session of its own and remembered here; stop_all() ends exactly
those (SIGTERM to each one's process group, SIGKILL after a grace period), and it runs on a
normal exit, an exception, Ctrl-C and SIGTERM alike (__main__ arranges that).
"""

import os
import re
import runpy
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import psycopg
import redis

REPO = Path(__file__).resolve().parents[2]
PG = "postgres://root@127.0.0.1:5432"
REDIS_URL = "redis://127.0.0.1:6379"
# Variables of the shell that would send the platform elsewhere (object storage, eager tasks).
FOREIGN_VARIABLES = ("TILE_BUCKET", "S3_ENDPOINT_URL", "IMAGERY_ROOT", "CELERY_TASK_ALWAYS_EAGER", "DEBUG",
                     "WEB_CONCURRENCY", "WEB_THREADS", "CONN_MAX_AGE")
SUBMIT_RATE = "1000000/min"
WORKER_READY = re.compile(r"celery@\S+ ready\.")

_started: list[subprocess.Popen] = []


@dataclass(frozen=True)
class Config:
    database: str
    redis_db: int
    port: int
    web_workers: int
    web_threads: int
    max_requests: int | None  # None: as platform/gunicorn.conf.py says
    celery_concurrency: int
    data_dir: Path

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def environment(config: Config) -> dict[str, str]:
    """Production settings (config/settings.py reads them all), pointed at this run's private stores."""
    env = {k: v for k, v in os.environ.items() if k not in FOREIGN_VARIABLES}
    env.update(
        DATABASE_URL=f"{PG}/{config.database}",
        CELERY_BROKER_URL=f"{REDIS_URL}/{config.redis_db}",
        CACHE_URL=f"{REDIS_URL}/{config.redis_db}",  # DRF's throttle counters shared by every gunicorn worker
        SECRET_KEY="bench-volunteers-only-not-a-secret",
        ALLOWED_HOSTS="127.0.0.1,localhost",
        DATA_DIR=str(config.data_dir),
        DEBUG="False",
        SUBMIT_RATE=SUBMIT_RATE,
        WEB_CONCURRENCY=str(config.web_workers),
        WEB_THREADS=str(config.web_threads),
        DJANGO_SETTINGS_MODULE="bench.volunteers.settings",
        LOG_LEVEL="WARNING",
        PYTHONUNBUFFERED="1",
    )
    return env


def free_port() -> int:
    """A loopback port nobody listens on now (others may run servers on this machine too)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def server_versions(config: Config) -> tuple[str, str]:
    with psycopg.connect(f"{PG}/postgres") as conn:
        pg = conn.execute("SHOW server_version").fetchone()[0]
    return pg, redis.Redis.from_url(f"{REDIS_URL}/{config.redis_db}").info("server")["redis_version"]


def recreate_database(name: str) -> None:
    """Drop (closing any session left on it by an earlier, killed run) and create the private database."""
    with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def flush_redis(db: int) -> None:
    redis.Redis.from_url(f"{REDIS_URL}/{db}").flushdb()


def queue_depth(db: int) -> int:
    """Messages waiting in Celery's default queue plus those taken but not yet acknowledged."""
    client = redis.Redis.from_url(f"{REDIS_URL}/{db}")
    return int(client.llen("celery")) + int(client.hlen("unacked"))


def wait_for_queue(db: int, timeout: float) -> tuple[float, int]:
    """Wait until the worker has done every enqueued task; (seconds waited, messages left)."""
    started = time.perf_counter()
    while (left := queue_depth(db)) and time.perf_counter() - started < timeout:
        time.sleep(0.2)
    return time.perf_counter() - started, left


def gunicorn_recycling() -> tuple[int, int]:
    """(max_requests, max_requests_jitter) as platform/gunicorn.conf.py sets them."""
    conf = runpy.run_path(str(REPO / "platform" / "gunicorn.conf.py"))
    return conf["max_requests"], conf["max_requests_jitter"]


def start_gunicorn(config: Config, env: dict[str, str], log: Path) -> subprocess.Popen:
    """gunicorn as the Procfile runs it (platform/gunicorn.conf.py), bound to loopback; waits until it answers."""
    return start_gunicorn_at(bind=f"127.0.0.1:{config.port}", health_url=f"{config.base_url}/bench/json/", env=env,
                             log=log, max_requests=config.max_requests)


def start_gunicorn_at(*, bind: str, health_url: str, env: dict[str, str], log: Path, max_requests: int | None = None,
                      extra: tuple[str, ...] = ()) -> subprocess.Popen:
    """gunicorn with platform/gunicorn.conf.py on `bind`; returns once `health_url` answers 200 (60 s at most)."""
    # An override comes with a jitter of a fifth of it, as platform/gunicorn.conf.py has.
    recycling = [] if max_requests is None else ["--max-requests", str(max_requests),
                                                 "--max-requests-jitter", str(max_requests // 5)]
    process = start([sys.executable, "-m", "gunicorn", "config.wsgi", "--config", "platform/gunicorn.conf.py",
                     "--bind", bind, *recycling, *extra], env, log)
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(health_url, timeout=2) as response:
                if response.status == 200:
                    return process
        except OSError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"gunicorn did not start:\n{log.read_text()[-3000:]}")
        time.sleep(0.2)


def start_celery(concurrency: int, env: dict[str, str], log: Path) -> subprocess.Popen:
    """One `celery -A config worker` as the Procfile runs it; waits for its 'ready' line."""
    process = start([sys.executable, "-m", "celery", "-A", "config", "worker",
                      f"--concurrency={concurrency}", "--loglevel=INFO"], env, log)
    deadline = time.monotonic() + 60
    while not WORKER_READY.search(log.read_text()):
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"the celery worker did not start:\n{log.read_text()[-3000:]}")
        time.sleep(0.2)
    return process


def start_client(spec_path: Path, result_path: Path, env: dict[str, str]) -> subprocess.Popen:
    """The load generator (bench/volunteers/load.py) in a process of its own; its stdout is a pipe."""
    return start([sys.executable, "-m", "bench.volunteers.load", str(spec_path), str(result_path)], env)


def start(command: list[str], env: dict[str, str], log: Path | None = None) -> subprocess.Popen:
    """A process in a session of its own (so stop() ends its children too), remembered for stop_all().

    Its output goes to `log`, or to a pipe the caller reads when there is none.
    """
    if log is None:
        process = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, text=True,
                                   start_new_session=True)
    else:
        with open(log, "w") as out:
            process = subprocess.Popen(command, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT,
                                       start_new_session=True)
    _started.append(process)
    return process


def stop(process: subprocess.Popen, grace: float = 30.0) -> None:
    """SIGTERM to the process group this benchmark started (the process is its leader), SIGKILL if it lingers."""
    if process.poll() is None:
        _signal_group(process, signal.SIGTERM)
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            _signal_group(process, signal.SIGKILL)
            process.wait()
    if process in _started:
        _started.remove(process)


def stop_all() -> None:
    """Stop everything this run started, newest first (client, then celery, then gunicorn)."""
    for process in reversed(list(_started)):
        stop(process)


def _signal_group(process: subprocess.Popen, sig: signal.Signals) -> None:
    try:
        os.killpg(process.pid, sig)
    except ProcessLookupError:
        pass


AUTOVACUUM_SETTINGS = ("autovacuum", "autovacuum_naptime", "autovacuum_vacuum_threshold",
                       "autovacuum_vacuum_scale_factor", "autovacuum_vacuum_insert_threshold",
                       "autovacuum_vacuum_insert_scale_factor", "autovacuum_analyze_threshold",
                       "autovacuum_analyze_scale_factor")
# How fast autovacuum may go: it sleeps for the delay whenever it has spent the limit's worth of page reads and
# writes (-1: as VACUUM's own setting says). A plain VACUUM runs unthrottled.
AUTOVACUUM_COST_SETTINGS = ("autovacuum_vacuum_cost_delay", "autovacuum_vacuum_cost_limit", "vacuum_cost_delay",
                            "vacuum_cost_limit")

# SQL: each table of the database with the rows autovacuum's triggers count, and its estimated size.
TABLE_CHURN = """SELECT s.relname, s.n_dead_tup, s.n_ins_since_vacuum, s.n_mod_since_analyze,
                        GREATEST(c.reltuples, 0)
                 FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid"""


def autovacuum_settings(conninfo: str) -> dict[str, str]:
    """The server's autovacuum settings (SHOW), by name."""
    with psycopg.connect(conninfo) as conn:
        return {name: conn.execute(f"SHOW {name}").fetchone()[0]
                for name in AUTOVACUUM_SETTINGS + AUTOVACUUM_COST_SETTINGS}


def autovacuum_pace(settings: dict[str, str]) -> dict[str, str]:
    """The session settings that make a VACUUM or ANALYZE go at autovacuum's pace (its cost delay and limit)."""
    def either(own: str, fallback: str) -> str:
        return settings[fallback] if settings[own].strip() == "-1" else settings[own]

    return {"vacuum_cost_delay": either("autovacuum_vacuum_cost_delay", "vacuum_cost_delay"),
            "vacuum_cost_limit": either("autovacuum_vacuum_cost_limit", "vacuum_cost_limit")}


def due(churn: tuple[str, int, int, int, float], settings: dict[str, float]) -> tuple[bool, bool]:
    """(vacuum, analyze): what PostgreSQL's autovacuum would do to a table with this churn, by its own formulas
    (the thresholds plus scale factor times the table's estimated rows)."""
    _table, dead, inserted, modified, tuples = churn
    vacuum = (dead > settings["autovacuum_vacuum_threshold"] + settings["autovacuum_vacuum_scale_factor"] * tuples
              or inserted > settings["autovacuum_vacuum_insert_threshold"]
              + settings["autovacuum_vacuum_insert_scale_factor"] * tuples)
    analyze = modified > settings["autovacuum_analyze_threshold"] + settings["autovacuum_analyze_scale_factor"] * tuples
    return vacuum, analyze


class AutovacuumStandIn:
    """PostgreSQL's autovacuum for a server that has it turned off (autovacuum = off in its configuration, as
    on this team's CI machines, for repeatable tests).

    Production runs autovacuum. Without it every vote leaves dead rows behind for good (the tile's vote count,
    the lease's expiry, the pending consensus update), the indexes fill with them, and PostgreSQL's CPU time per
    vote grows with every vote stored since the database was made: each phase of a run paid for the phases
    before it. This thread does what autovacuum would: every autovacuum_naptime it vacuums (and analyzes) each
    table of the benchmark's database that autovacuum's own thresholds, read from the server, say is due, at
    autovacuum's pace (autovacuum_pace): a plain VACUUM runs unthrottled, autovacuum sleeps between batches of
    pages. On the benchmark's tables either is brief (a VACUUM ANALYZE of the 20,000 tiles with a third of them
    dead: 64 ms unthrottled, 86 ms at autovacuum's pace).
    """

    def __init__(self, conninfo: str, settings: dict[str, str]) -> None:
        self.conninfo = conninfo  # the benchmark's database
        self.naptime = _seconds(settings["autovacuum_naptime"])
        self.settings = {name: float(value) for name, value in settings.items()
                         if name not in ("autovacuum", "autovacuum_naptime", *AUTOVACUUM_COST_SETTINGS)}
        self.pace = autovacuum_pace(settings)
        self.stopped = threading.Event()
        self.runs: list[str] = []  # "VACUUM ANALYZE table", in order
        self.failure: BaseException | None = None
        self.thread = threading.Thread(target=self._loop, name="autovacuum stand-in", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.stopped.set()
        if self.thread.is_alive():
            self.thread.join()

    def _loop(self) -> None:
        try:
            while not self.stopped.wait(self.naptime):
                self.sweep()
        except BaseException as failure:  # reported by the run (a thread's exception would go unseen)
            self.failure = failure

    def sweep(self) -> list[str]:
        """One round: the statements it ran."""
        done = []
        with psycopg.connect(self.conninfo, autocommit=True) as conn:
            for name, value in self.pace.items():
                conn.execute("SELECT set_config(%s, %s, FALSE)", [name, value])
            for churn in conn.execute(TABLE_CHURN).fetchall():
                vacuum, analyze = due(churn, self.settings)
                command = " ".join(word for word, wanted in (("VACUUM", vacuum), ("ANALYZE", analyze)) if wanted)
                if command:
                    conn.execute(f'{command} "{churn[0]}"')
                    done.append(f"{command} {churn[0]}")
        self.runs.extend(done)
        return done


def _seconds(value: str) -> float:
    """A PostgreSQL duration as SHOW prints it (1min, 30s, 500ms) in seconds."""
    number, unit = re.fullmatch(r"(\d+)\s*(ms|s|min|h|d)?", value.strip()).groups()
    return int(number) * {"ms": 0.001, "s": 1, "min": 60, "h": 3600, "d": 86400, None: 1}[unit]
