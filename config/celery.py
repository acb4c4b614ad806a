"""The Celery app, configured from Django settings (CELERY_* names)."""

import os
from typing import Any

from celery import Celery
from celery.signals import beat_init, before_task_publish, worker_init

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("config")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.imports = ("workers.imagery", "workers.maps", "workers.tagging")

_dirs_ready = False


@worker_init.connect
@beat_init.connect
@before_task_publish.connect
def _ensure_broker_folders(**_: Any) -> None:
    # The filesystem broker needs its folders before the first message; made on first
    # use rather than at import time, once per process.
    global _dirs_ready
    if not _dirs_ready:
        from config.runtime import ensure_data_dirs

        ensure_data_dirs()
        _dirs_ready = True
