import os
from pathlib import Path

import pytest
from django.contrib.auth.models import Group, Permission

from config.celery import app as celery_app

SHARED_DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data"


@pytest.fixture(autouse=True)
def isolated_files(settings, tmp_path: Path):
    """Every test writes imagery, uploads and tiles under its own temporary folder."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # speed, tests only
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache",
                                   "LOCATION": str(tmp_path)},  # rate-limit counters start at zero
                       "local": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache",
                                 "LOCATION": f"local-{tmp_path}"}}  # as a new process: remembering nothing
    settings.IMAGERY_ROOT = tmp_path / "imagery"
    settings.FILE_UPLOAD_TEMP_DIR = str(tmp_path / "tmp")
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.STORAGES = {
        "default": {"BACKEND": "django.core.files.storage.FileSystemStorage",
                    "OPTIONS": {"location": str(tmp_path / "media"), "allow_overwrite": True}},
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }
    for folder in (settings.IMAGERY_ROOT, Path(settings.FILE_UPLOAD_TEMP_DIR), settings.MEDIA_ROOT):
        folder.mkdir(parents=True, exist_ok=True)
    return tmp_path


@pytest.fixture(autouse=True, scope="session")
def eager_celery():
    """Tasks run inline in unit tests; tests/test_worker.py runs a real worker process."""
    celery_app.conf.task_always_eager = True
    celery_app.conf.task_eager_propagates = True
    yield
    celery_app.conf.task_always_eager = False


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real imagery not found at {SHARED_DATA} (the shared/ folder beside the repository)")
    return SHARED_DATA


@pytest.fixture
def admin_user(django_user_model):
    return django_user_model.objects.create_superuser("admin", "admin@example.org", "admin-pass-123")


@pytest.fixture
def platform_admin(django_user_model):
    """An admin by role (the 'admins' group), not a Django superuser."""
    group, _ = Group.objects.get_or_create(name="admins")
    group.permissions.add(Permission.objects.get(codename="manage_any_project"))
    user = django_user_model.objects.create_user("boss", password="boss-pass-123")
    user.groups.add(group)
    return user


@pytest.fixture
def volunteer(django_user_model):
    return django_user_model.objects.create_user("vol", password="vol-pass-123")


@pytest.fixture
def outsider(django_user_model):
    return django_user_model.objects.create_user("outsider", password="out-pass-123")


def pytest_report_header() -> list[str]:
    from django.conf import settings

    return [f"database: {settings.DATABASES['default']['ENGINE']}, broker: {os.environ.get('CELERY_BROKER_URL', 'filesystem://')}"]


def pytest_configure(config: pytest.Config) -> None:
    from config.runtime import ensure_data_dirs

    ensure_data_dirs()  # the test database lives in DATA_DIR
