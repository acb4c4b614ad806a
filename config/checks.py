"""System checks for a production configuration, and for data an older version allowed."""

from typing import Any

from django.conf import settings
from django.core.checks import Error, Tags, Warning, register
from django.db import DatabaseError


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


@register(Tags.database)
def check_reserved_project_slugs(app_configs: Any = None, databases: Any = None, **_: Any) -> list[Warning]:
    """Projects whose slug a page of the site hides (tagging.projects.RESERVED_SLUGS), made before the API and the
    admin refused such slugs. A database check: it runs with `check --database default` and before `migrate`."""
    from tagging.models import Project
    from tagging.projects import RESERVED_SLUGS, reserved_slug_message

    if app_configs is not None and not any(config.label == "tagging" for config in app_configs):
        return []
    problems: list[Warning] = []
    for alias in databases or []:
        try:
            slugs = list(Project.objects.using(alias).filter(slug__in=RESERVED_SLUGS).order_by("slug")
                         .values_list("slug", flat=True))
        except DatabaseError:  # no tables yet (before the first migrate): nothing to warn about
            continue
        problems += [Warning(
            reserved_slug_message(slug),
            hint="Give the project another slug in Django's admin (/admin/, Projects); links with the old slug "
                 "stop working.",
            obj=f"Project '{slug}'", id="platform.W002") for slug in slugs]
    return problems
