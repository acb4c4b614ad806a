from argparse import ArgumentParser
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from tagging.evidence import write_evidence_file
from tagging.management.lookup import project_or_error


class Command(BaseCommand):
    help = ("Write a project's evidence bundle (exports with and without reviews, classifications, gold, reviews, "
            "imagery checksums, grid, method, methodology, MANIFEST.sha256): export_evidence <slug> --out FILE.zip.")

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("slug")
        parser.add_argument("--out", type=Path, required=True, help="The zip file to write.")
        parser.add_argument("--min-confidence", type=float, default=0.5,
                            help="Buildings at least this sure in the exports (default %(default)s).")

    def handle(self, *args: Any, **options: Any) -> None:
        project = project_or_error(options["slug"])
        if not 0.0 <= options["min_confidence"] <= 1.0:
            raise CommandError("--min-confidence must be from 0 to 1.")
        path = write_evidence_file(project=project, path=options["out"], min_confidence=options["min_confidence"])
        self.stdout.write(f"wrote {path}")
