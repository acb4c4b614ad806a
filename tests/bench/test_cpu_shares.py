"""bench.volunteers.cpu: a process that ends within a window (a recycled gunicorn worker, its PostgreSQL backends)
still counts for its group, through its parent's count of its ended children."""

import pytest

from bench.volunteers.cpu import TICKS, Sample, shares

BENCH, MASTER, OLD_WORKER, NEW_WORKER, POSTMASTER, OLD_BACKEND, NEW_BACKEND = 10, 20, 21, 22, 30, 31, 32
TITLES = {POSTMASTER: "/usr/lib/postgresql/15/bin/postgres -D /var/lib/postgresql/15/main",
          OLD_BACKEND: "postgres: 15/main: root bench 127.0.0.1(5000) idle",
          NEW_BACKEND: "postgres: 15/main: root bench 127.0.0.1(5001) idle"}


def test_a_worker_and_a_backend_recycled_in_the_window_count_for_their_time_in_it() -> None:
    before = Sample({BENCH: ("python", 1, 0), MASTER: ("gunicorn", BENCH, 100), OLD_WORKER: ("gunicorn", MASTER, 50),
                     POSTMASTER: ("postgres", 1, 500), OLD_BACKEND: ("postgres", POSTMASTER, 40)}, TITLES)
    # The old worker ran 30 more ticks and ended (its master now counts its 80); the master ran 10, the new
    # worker 20. The old backend ran 5 more and ended (the postmaster counts its 45); the new one ran 15.
    after = Sample({BENCH: ("python", 1, 0), MASTER: ("gunicorn", BENCH, 100 + 10 + 80),
                    NEW_WORKER: ("gunicorn", MASTER, 20), POSTMASTER: ("postgres", 1, 500 + 45),
                    NEW_BACKEND: ("postgres", POSTMASTER, 15)}, TITLES)
    used = shares(before, after, 1.0, {"gunicorn": MASTER}, "bench")
    assert used["gunicorn"] == pytest.approx(60 / TICKS)
    assert used["postgres"] == pytest.approx(20 / TICKS)
    assert used["other"] == 0


def test_without_an_ending_each_process_counts_its_own_time() -> None:
    before = Sample({MASTER: ("gunicorn", BENCH, 100), OLD_WORKER: ("gunicorn", MASTER, 50)}, {})
    after = Sample({MASTER: ("gunicorn", BENCH, 101), OLD_WORKER: ("gunicorn", MASTER, 90)}, {})
    assert shares(before, after, 2.0, {"gunicorn": MASTER})["gunicorn"] == pytest.approx(41 / TICKS / 2)
