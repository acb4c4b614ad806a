from argparse import ArgumentParser
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from tagging.consensus_exports import write_exports
from tagging.models import Project


class Command(BaseCommand):
    help = ("Write a project's consensus as tiles.geojson, tiles.csv, buildings.geojson and buildings.csv: "
            "export_consensus <slug> --out DIR [--min-confidence 0.5].")

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("slug")
        parser.add_argument("--out", type=Path, required=True, help="Folder to write into (made if missing).")
        parser.add_argument("--min-confidence", type=float, default=0.5,
                            help="Buildings at least this sure (default %(default)s).")

    def handle(self, *args: Any, **options: Any) -> None:
        project = Project.objects.filter(slug=options["slug"]).first()
        if project is None:
            raise CommandError(f"There is no project '{options['slug']}'.")
        if not 0.0 <= options["min_confidence"] <= 1.0:
            raise CommandError("--min-confidence must be from 0 to 1.")
        for path in write_exports(project=project, folder=options["out"], min_confidence=options["min_confidence"]):
            self.stdout.write(f"wrote {path}")
