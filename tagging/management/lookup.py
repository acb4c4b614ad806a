"""What the management commands look up by name, with the error a person at a terminal should see."""

from pathlib import Path

from django.core.management.base import CommandError

from tagging.models import Project


def project_or_error(slug: str) -> Project:
    project = Project.objects.filter(slug=slug).first()
    if project is None:
        raise CommandError(f"There is no project '{slug}'.")
    return project


def file_or_error(path: Path) -> Path:
    if not path.is_file():
        raise CommandError(f"There is no file {path}.")
    return path
