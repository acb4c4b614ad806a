from pathlib import Path

from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.test import APIClient

from tagging.models import Project
from tagging.projects import create_project


def make_project(slug: str = "raqqa", **options: object) -> Project:
    return create_project(slug=slug, name=slug.title(), **options)  # type: ignore[arg-type]


def upload(client: APIClient, slug: str, files: list[tuple[str, bytes]], date: str = "2017-06-01", **data: str):
    payload = {"date": date, "files": [SimpleUploadedFile(name, content) for name, content in files], **data}
    return client.post(f"/api/v1/projects/{slug}/layers/", payload, format="multipart")


def files_under(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file())
