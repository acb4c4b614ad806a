import datetime as dt
import time
from argparse import ArgumentParser
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from config.errors import PlatformError
from imagery.ingest import create_layer, stage_all
from imagery.models import ImageryLayer
from tagging.management.lookup import project_or_error

DONE = {ImageryLayer.Status.READY, ImageryLayer.Status.FAILED}


class Command(BaseCommand):
    help = ("Add imagery of one date to a project: ingest_imagery <slug> <path> [<path>...] --date YYYY-MM-DD "
            "[--wait]. Several paths form one mosaic layer.")

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("slug")
        parser.add_argument("paths", nargs="+", type=Path)
        parser.add_argument("--date", required=True, type=dt.date.fromisoformat, help="Acquisition date.")
        parser.add_argument("--source", default="", help="Provider, sensor or scene id.")
        parser.add_argument("--bands", default="", help="Bands shown as red,green,blue, e.g. 3,2,1.")
        parser.add_argument("--wait", action="store_true", help="Show progress until the tiles are ready.")
        parser.add_argument("--timeout", type=float, default=0, help="With --wait: give up after N seconds.")

    def handle(self, *args: Any, **options: Any) -> None:
        project = project_or_error(options["slug"])
        bands = [int(b) for b in options["bands"].split(",")] if options["bands"] else None
        self.stderr.write(f"Copying and checksumming {len(options['paths'])} file(s) ...")
        try:
            layer = create_layer(project=project, date=options["date"], staged=stage_all(options["paths"]),
                                 source=options["source"], bands=bands)
        except PlatformError as exc:
            raise CommandError(exc.message) from exc
        self.stdout.write(f"Layer {layer.pk} of {project.slug} ({layer.date}): {layer.width} x {layer.height} px, "
                          f"{len(options['paths'])} file(s), status {layer.status}.")
        if options["wait"]:
            self._wait(layer, options["timeout"])

    def _wait(self, layer: ImageryLayer, timeout: float) -> None:
        started = time.monotonic()
        with tqdm(total=1, unit="tile", desc=f"layer {layer.pk}", file=self.stderr._out) as bar:
            while True:
                layer.refresh_from_db()
                bar.total = max(layer.tiles_total, 1)
                bar.n = layer.tiles_done
                bar.set_postfix_str(layer.status)
                bar.refresh()
                if layer.status in DONE:
                    break
                if timeout and time.monotonic() - started > timeout:
                    raise CommandError(f"Layer {layer.pk} is still {layer.status} after {timeout:g} s "
                                       "(is a worker running?).")
                time.sleep(0.2)
        self.stdout.write(f"Layer {layer.pk}: {layer.status}, {layer.tile_count} tiles.")
        if layer.status == ImageryLayer.Status.FAILED:
            raise CommandError(f"Layer {layer.pk} failed: {layer.error}")
