"""platform/gunicorn.conf.py's hooks, run as gunicorn runs them, in a fresh interpreter."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# The master's hook, then what it left: the Celery app ready for a worker's first message, and no connection.
MASTER = """
import json, runpy, sys
import django
django.setup()
from config.celery import app
before = [app.finalized, app._backend is not None]
conf = runpy.run_path("platform/gunicorn.conf.py")
conf["when_ready"](None)
transports = sorted(name for name in sys.modules if name.startswith("kombu.transport.") or name == "config.broker")
print(json.dumps({"before": before, "finalized": app.finalized, "backend": app._backend is not None,
                  "pool": app._pool is not None, "transports": transports,
                  "task": "workers.tagging.update_pending_tiles" in app.tasks}))
"""


@pytest.mark.parametrize(("broker", "transport"), [(None, "config.broker"),
                                                   ("redis://127.0.0.1:1/0", "kombu.transport.redis")])
def test_the_master_readies_celery_for_the_workers_without_connecting(tmp_path: Path, broker: str | None,
                                                                        transport: str) -> None:
    """A worker's first task message would otherwise finalize the app, find its result backend and import the
    broker's transport while holding the worker's GIL; nothing may connect before the fork (port 1: nobody
    listens, so a connection attempt would fail the hook)."""
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "CELERY_BROKER_URL", "DATA_DIR"}}
    env.update(DATA_DIR=str(tmp_path), DJANGO_SETTINGS_MODULE="config.settings")
    if broker:
        env.update(CELERY_BROKER_URL=broker, SECRET_KEY="test-only", DATABASE_URL=f"sqlite:///{tmp_path}/db.sqlite3")
    out = subprocess.run([sys.executable, "-c", MASTER], cwd=ROOT, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    state = json.loads(out.stdout.strip().splitlines()[-1])
    assert state["before"] == [False, False]
    assert state["finalized"] and state["backend"] and state["task"]
    assert transport in state["transports"]
    assert state["pool"] is False
