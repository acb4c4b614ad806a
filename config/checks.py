"""System checks for a production configuration."""

from typing import Any

from django.conf import settings
from django.core.checks import Error, Warning, register


@register("security", deploy=False)
def check_production_secrets(app_configs: Any = None, **_: Any) -> list[Error | Warning]:
    problems: list[Error | Warning] = []
    if settings.SECRET_KEY == settings.MISSING_SECRET_KEY:
        problems.append(Error(
            "SECRET_KEY is not set, and DATABASE_URL says this is a production set-up.",
            hint="Set SECRET_KEY to a long random string in the environment.",
            id="platform.E001",
        ))
    if not settings.EMBEDDED and settings.CELERY_BROKER_URL.startswith("filesystem://"):
        problems.append(Warning(
            "The Celery broker is the local filesystem while the database is a server.",
            hint="Set CELERY_BROKER_URL (redis://...) so that workers on other machines get the jobs.",
            id="platform.W001",
        ))
    return problems
