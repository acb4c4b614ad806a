"""The product's settings plus the benchmark's two ceiling views (bench/volunteers/urls.py).

Only the URL configuration differs from production, so the ceilings are served by the
same gunicorn, middleware, database and cache as the volunteers' API they are compared with.
"""

from config.settings import *  # noqa: F403

ROOT_URLCONF = "bench.volunteers.urls"
