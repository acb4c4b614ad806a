from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from config.errors import PlatformError
from tagging.projects import answers_from_keys, create_project


class Command(BaseCommand):
    help = "Create a project: create_project <slug> --name NAME [--answers a,b,c] [--tile-size 512] ..."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("slug")
        parser.add_argument("--name", required=True)
        parser.add_argument("--answers", default="destroyed,damaged,no_damage,cant_tell",
                            help="Comma-separated answer keys (default: %(default)s).")
        parser.add_argument("--question", default=None)
        parser.add_argument("--instructions", default="")
        parser.add_argument("--tile-size", type=int, default=512)
        parser.add_argument("--overlap", type=int, default=64)
        parser.add_argument("--redundancy", type=int, default=5)
        parser.add_argument("--private", action="store_true", help="Only invited volunteers may tag.")
        parser.add_argument("--active", action="store_true", help="Open the project at once (default: draft).")

    def handle(self, *args: Any, **options: Any) -> None:
        extra: dict[str, Any] = {"instructions": options["instructions"], "is_public": not options["private"]}
        if options["question"]:
            extra["question"] = options["question"]
        if options["active"]:
            extra["status"] = "active"
        try:
            project = create_project(slug=options["slug"], name=options["name"],
                                     answers=answers_from_keys(options["answers"].split(",")),
                                     tile_size=options["tile_size"], overlap=options["overlap"],
                                     redundancy=options["redundancy"], **extra)
        except PlatformError as exc:
            raise CommandError(exc.message) from exc
        self.stdout.write(f"Created project {project.slug} ({project.name}) with answers "
                          f"{', '.join(project.answer_keys)}.")
