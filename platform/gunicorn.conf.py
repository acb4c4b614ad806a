# gunicorn settings (read by gunicorn from a path, never imported as a package).
import os

workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
threads = int(os.environ.get("WEB_THREADS", "4"))
worker_class = "gthread"
timeout = int(os.environ.get("WEB_TIMEOUT", "600"))  # multi-GB uploads stream for a while
graceful_timeout = 30
accesslog = "-"
max_requests = 2000
max_requests_jitter = 200
