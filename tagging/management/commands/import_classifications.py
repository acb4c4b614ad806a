from argparse import ArgumentParser
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from config.errors import PlatformError
from tagging.imports import import_classifications
from tagging.management.lookup import file_or_error, project_or_error


class Command(BaseCommand):
    help = ("Import votes from a CSV file: import_classifications <slug> <file.csv>. Columns: tile_col, tile_row, "
            "volunteer (pseudonym), answer, and optionally marks (JSON [[x, y], ...] tile pixels, or "
            '[x, y, "YYYY-MM-DD"]), seconds, created_at. A file with any bad row stores nothing; importing the '
            "same file again adds nothing.")

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("slug")
        parser.add_argument("path", type=Path)

    def handle(self, *args: Any, **options: Any) -> None:
        project = project_or_error(options["slug"])
        file_or_error(options["path"])
        try:
            result = import_classifications(project=project, path=options["path"])
        except PlatformError as exc:
            raise CommandError(exc.message) from exc
        self.stdout.write(f"{result.rows} rows: {result.created} votes stored, {result.unchanged} already there; "
                          f"{result.volunteers_created} new volunteer accounts. The consensus is recomputed by a "
                          "worker (or run recompute_consensus).")
