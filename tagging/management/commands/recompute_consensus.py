from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from config.errors import PlatformError
from tagging.consensus_store import recompute_project
from tagging.management.lookup import project_or_error


class Command(BaseCommand):
    help = ("Re-estimate a project's whole consensus now (tile labels, buildings, date windows, volunteer "
            "reliability) from its stored votes: recompute_consensus <slug>.")

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("slug")

    def handle(self, *args: Any, **options: Any) -> None:
        project = project_or_error(options["slug"])
        try:
            run = recompute_project(project_id=project.pk)
        except PlatformError as exc:
            raise CommandError(exc.message) from exc
        if run is None:
            raise CommandError(f"The project '{options['slug']}' was deleted meanwhile.")
        counts = ", ".join(f"{key} {value}" for key, value in run.counts.items())
        self.stdout.write(f"Consensus run {run.pk} of {project.slug}: {counts}; "
                          f"{run.timings.get('total_s', 0):.2f} s.")
