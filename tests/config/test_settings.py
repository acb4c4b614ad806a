"""Settings from the environment: the embedded default, production, and its checks."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import call_command

ROOT = Path(__file__).resolve().parents[2]


def settings_in(env: dict[str, str], expression: str) -> object:
    """Evaluate an expression over a fresh settings import, with exactly this environment."""
    clean = {k: v for k, v in os.environ.items() if k not in {
        "DATABASE_URL", "CELERY_BROKER_URL", "SECRET_KEY", "TILE_BUCKET", "DATA_DIR", "DEBUG"}}
    code = f"import json, config.settings as s; print(json.dumps({expression}, default=str))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env={**clean, **env}, capture_output=True,
                         text=True, check=True)
    return json.loads(out.stdout)


def test_unset_variables_give_the_embedded_default(tmp_path: Path) -> None:
    result = settings_in({"DATA_DIR": str(tmp_path)},
                         "[s.DATABASES['default']['ENGINE'], s.DATABASES['default']['NAME'], s.CELERY_BROKER_URL,"
                         " s.STORAGES['default']['BACKEND'], str(s.IMAGERY_ROOT), s.DEBUG, s.EMBEDDED]")
    assert result == ["django.db.backends.sqlite3", str(tmp_path / "db.sqlite3"), "filesystem://",
                      "django.core.files.storage.FileSystemStorage", str(tmp_path / "imagery"), False, True]


def test_two_data_dirs_share_nothing(tmp_path: Path) -> None:
    keys = "[s.DATABASES['default']['NAME'], s.CELERY_BROKER_TRANSPORT_OPTIONS['data_folder_in'], str(s.MEDIA_ROOT)," \
           " str(s.IMAGERY_ROOT), s.FILE_UPLOAD_TEMP_DIR]"
    one = settings_in({"DATA_DIR": str(tmp_path / "one")}, keys)
    two = settings_in({"DATA_DIR": str(tmp_path / "two")}, keys)
    assert all(str(tmp_path / "one") in a and str(tmp_path / "two") in b for a, b in zip(one, two))


def test_set_variables_give_production(tmp_path: Path) -> None:
    result = settings_in({"DATABASE_URL": "postgres://u:p@db.internal:5432/damage", "SECRET_KEY": "s" * 50,
                          "CELERY_BROKER_URL": "redis://redis.internal:6379/0", "TILE_BUCKET": "tiles",
                          "ALLOWED_HOSTS": "damage.example.org"},
                         "[s.DATABASES['default']['ENGINE'], s.DATABASES['default']['HOST'], s.CELERY_BROKER_URL,"
                         " s.STORAGES['default']['BACKEND'], s.STORAGES['default']['OPTIONS']['bucket_name'],"
                         " s.ALLOWED_HOSTS, s.DEBUG, s.EMBEDDED]")
    assert result == ["config.postgresql", "db.internal", "redis://redis.internal:6379/0",
                      "storages.backends.s3.S3Storage", "tiles", ["damage.example.org"], False, False]


def test_a_production_set_up_without_a_secret_key_fails_the_system_check(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in {"SECRET_KEY", "CELERY_BROKER_URL"}}
    env.update(DATABASE_URL="postgres://u:p@127.0.0.1:1/none", DATA_DIR=str(tmp_path))
    result = subprocess.run([sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True, text=True)
    assert result.returncode != 0
    assert "platform.E001" in result.stderr and "SECRET_KEY is not set" in result.stderr
    assert "platform.W001" in result.stderr


@pytest.mark.django_db
def test_the_openapi_schema_is_served_and_valid(admin_user) -> None:
    from rest_framework.test import APIClient

    api = APIClient()
    api.force_authenticate(admin_user)
    response = api.get("/api/schema/", {"format": "json"})
    assert response.status_code == 200
    schema = json.loads(response.content)
    for path in ("/api/v1/projects/", "/api/v1/projects/{slug}/layers/", "/api/v1/layers/{layer_id}/",
                 "/api/v1/projects/{slug}/tiles/", "/api/v1/tiles/{tile_id}/images/{layer_id}/",
                 "/api/v1/auth/token/"):
        assert path in schema["paths"], path
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", os.devnull)


def test_health_answers_when_the_database_does(client, db) -> None:
    assert client.get("/health/").json() == {"status": "ok"}
