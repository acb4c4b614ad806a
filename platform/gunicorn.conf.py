# gunicorn settings (read by gunicorn from a path, never imported as a package).
import os

workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
# Threads overlap a request's waits on PostgreSQL and Redis: a volunteer's vote is a dozen round trips
# (bench.volunteers: 8 threads gave about 15% more votes per second than 4 on 2 cores).
threads = int(os.environ.get("WEB_THREADS", "8"))
worker_class = "gthread"
timeout = int(os.environ.get("WEB_TIMEOUT", "600"))  # multi-GB uploads stream for a while
graceful_timeout = 30
accesslog = "-"
# Workers are forked from a master that has imported Django and the app (numpy, scipy, rasterio), so a
# recycled worker serves at once instead of importing for seconds; recycling is rare and spread out
# (bench.volunteers saw 22 recycles in a run at 2000 requests, each a multi-second stall).
preload_app = True
max_requests = 20000
max_requests_jitter = 4000


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
