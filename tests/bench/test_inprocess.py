"""bench.volunteers.inprocess: its arguments, and the CPU time it reads from /proc."""

import os
import time

from bench.volunteers.inprocess import arguments, backend_seconds


def test_the_defaults_measure_three_runs_of_1500_votes_on_a_database_of_its_own() -> None:
    args = arguments([])
    assert (args.votes, args.runs, args.statements) == (1500, 3, False)
    assert args.database == "bench_volunteers_inprocess" != arguments(["--database", "x"]).database


def test_a_process_cpu_time_grows_as_it_works() -> None:
    before = backend_seconds(os.getpid())
    started = time.process_time()
    while time.process_time() - started < 0.1:
        pass
    assert backend_seconds(os.getpid()) - before >= 0.05  # clock ticks: 10 ms apart
