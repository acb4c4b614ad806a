import json
from argparse import ArgumentParser
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from tagging.consensus_exports import EXPORTS, provenance, write_atomically, write_exports
from tagging.gis_exports import GIS_EXPORTS, write_gis_exports
from tagging.management.lookup import project_or_error

FORMATS = ("geojson", "csv", "gpkg", "kml")


class Command(BaseCommand):
    help = ("Write a project's consensus (reviews applied unless --crowd-only) as tiles.<format> and "
            "buildings.<format>, with provenance.json beside them: "
            "export_consensus <slug> --out DIR [--format geojson,csv,gpkg,kml] [--min-confidence 0.5] [--crowd-only].")

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("slug")
        parser.add_argument("--out", type=Path, required=True, help="Folder to write into (made if missing).")
        parser.add_argument("--format", default="geojson,csv",
                            help=f"Comma-separated, of {', '.join(FORMATS)} (default %(default)s).")
        parser.add_argument("--min-confidence", type=float, default=0.5,
                            help="Buildings at least this sure (default %(default)s).")
        parser.add_argument("--crowd-only", action="store_true",
                            help="The crowd's consensus alone, without the coordinators' reviews.")

    def handle(self, *args: Any, **options: Any) -> None:
        project = project_or_error(options["slug"])
        if not 0.0 <= options["min_confidence"] <= 1.0:
            raise CommandError("--min-confidence must be from 0 to 1.")
        formats = [f.strip() for f in options["format"].split(",") if f.strip()]
        unknown = sorted(set(formats) - set(FORMATS))
        if unknown or not formats:
            raise CommandError(f"--format takes {', '.join(FORMATS)}, not {', '.join(unknown) or 'nothing'}.")
        reviews, folder, floor = not options["crowd_only"], options["out"], options["min_confidence"]
        text = tuple(name for name in EXPORTS if name.rpartition(".")[2] in formats)
        gis = tuple(name for name in GIS_EXPORTS if name.rpartition(".")[2] in formats)
        paths = write_exports(project=project, folder=folder, min_confidence=floor, reviews=reviews, names=text)
        paths += write_gis_exports(project=project, folder=folder, names=gis, min_confidence=floor, reviews=reviews)
        for path in paths:
            self.stdout.write(f"wrote {path}")
        described = write_atomically(folder / "provenance.json", [json.dumps(
            provenance(project=project, kind="consensus", reviews=reviews, min_confidence=floor), indent=2,
            default=str)])
        self.stdout.write(f"described by {described}")
