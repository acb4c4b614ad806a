# gunicorn settings (read by gunicorn from a path, never imported as a package).
import os

workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
# Threads overlap a request's waits on PostgreSQL (a vote's commit waits for the disk) and Redis. bench.volunteers
# on 2 cores: 8 threads gave about 15% more votes per second than 4 (when a vote was a dozen round trips); 16 gave
# no more than 8 (saturated at 64 volunteers, four alternating pairs: 288 to 322 votes/s against 284 to 297).
threads = int(os.environ.get("WEB_THREADS", "8"))
worker_class = "gthread"
timeout = int(os.environ.get("WEB_TIMEOUT", "600"))  # multi-GB uploads stream for a while
graceful_timeout = 30
accesslog = "-"
# Workers are forked from a master that has imported Django and the app (numpy, scipy, rasterio), so a
# recycled worker serves at once instead of importing for seconds.
preload_app = True
# A worker is recycled after this many requests (plus up to the jitter, so that workers do not all go at once): a
# guard against memory that would grow for good. A recycle is not free. The new worker opens its connections
# (PostgreSQL, Redis, the broker), its PostgreSQL processes compile the vote functions, and its first requests take
# several times longer while volunteers queue behind them (in process, a new process's first vote took 27 ms with
# its database connection already warm, the next ones 4.6 to 7.8 ms). At 500 volunteers (bench.volunteers, 40 s
# windows) the p99 of next tile / submit was 15 to 27 / 20 to 43 ms in seven windows without a recycle, and 31 to 70 /
# 41 to 77 ms in three with one or two. At 20,000 requests a worker was recycled every 200 s or so at that load,
# and every 70 s at saturation. A worker's memory grew by about 10 bytes a request at saturation (RSS 171.7 to
# 172.1 MB over some 41,000 requests), so at 500,000 a worker lives half an hour to hours and grows by a few MB.
max_requests = 500_000
max_requests_jitter = 100_000


def when_ready(server):  # noqa: ANN001, ANN201 (gunicorn's hook, run in the master before the first fork)
    # Import every view now, in the master (Django imports the URLconf at the first request): otherwise each new
    # worker, a recycled one too, spends its first request importing them (0.9 s on a quiet machine).
    from django.urls import get_resolver

    get_resolver().check()  # reads url_patterns, which imports the views

    # Likewise for Celery: a worker's first task message (its first vote's consensus update, the map's first state
    # check) otherwise finalizes the app, finds its result backend (a scan of every package's entry points) and
    # imports the broker's transport: 160 ms holding the worker's GIL, every thread of it stalled (bench.map's
    # tails), 30 ms once done here. Nothing here opens a connection (none may cross the fork; Celery drops its
    # connection pool in a forked child anyway).
    import importlib

    from config.celery import app

    for module in app.conf.imports:  # the tasks' modules, which a view imports when it first sends one
        importlib.import_module(module)
    app.finalize(auto=True)
    app.backend  # noqa: B018
    app.amqp  # noqa: B018
    with app.connection_for_write() as connection:
        connection.transport  # noqa: B018 (the transport's class and module, no socket yet)


def pre_fork(server, worker):  # noqa: ANN001, ANN201 (gunicorn's hook, run in the master before each fork)
    # Everything the preloaded app made stays out of the workers' garbage collections: a full collection then
    # walks what a worker made itself, not the ~140,000 objects of Django, numpy, rasterio and the app, which
    # stopped every thread of the worker for 70 to 90 ms each time on a quiet machine (and copied the master's
    # pages to the worker).
    import gc

    gc.freeze()
