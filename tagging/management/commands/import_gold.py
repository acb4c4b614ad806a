from argparse import ArgumentParser
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from config.errors import PlatformError
from tagging.imports import import_gold
from tagging.management.lookup import file_or_error, project_or_error


class Command(BaseCommand):
    help = ("Make tiles gold tiles with known answers, from a CSV file: import_gold <slug> <file.csv>. Columns: "
            "tile_col, tile_row, answer, and optionally marks (JSON [[x, y], ...] tile pixels of the destroyed "
            "buildings). A file with any bad row stores nothing.")

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("slug")
        parser.add_argument("path", type=Path)

    def handle(self, *args: Any, **options: Any) -> None:
        project = project_or_error(options["slug"])
        file_or_error(options["path"])
        try:
            result = import_gold(project=project, path=options["path"])
        except PlatformError as exc:
            raise CommandError(exc.message) from exc
        self.stdout.write(f"{result.rows} gold tiles: {result.created} new or changed, {result.unchanged} "
                          "unchanged.")
