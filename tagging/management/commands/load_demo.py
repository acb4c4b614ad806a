"""Demo accounts and a demo project with generated before/after imagery whose truth is known."""

import json
import secrets
from argparse import ArgumentParser
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.core.management.base import BaseCommand
from django.db import transaction

from imagery.ingest import create_layer, stage_path
from imagery.models import Tile
from imagery.synthetic import DemoScene, buildings_geojson, write_demo_scene
from tagging.models import GoldAnswer, Membership, Project
from tagging.projects import create_project

DEMO_SLUG = "demo"
DATES = (date(2017, 5, 1), date(2017, 10, 20))
GOLD_EVERY = 10  # one tile in ten has a known answer: the tutorial's practice tiles and gold in the stream


def ensure_roles() -> dict[str, Group]:
    """The role groups: admins manage every project; coordinators and volunteers by membership."""
    admins, _ = Group.objects.get_or_create(name="admins")
    admins.permissions.add(Permission.objects.get(codename="manage_any_project"))
    return {"admin": admins, "coordinator": Group.objects.get_or_create(name="coordinators")[0],
            "volunteer": Group.objects.get_or_create(name="volunteers")[0]}


class Command(BaseCommand):
    help = "Create demo accounts (new passwords printed) and the demo project with two dates of imagery."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--size", type=int, default=2048, help="Demo scene size in pixels.")

    def handle(self, *args: Any, **options: Any) -> None:
        groups = ensure_roles()
        passwords = {name: self._account(name, groups[name]) for name in ("admin", "coordinator", "volunteer")}
        project = Project.objects.filter(slug=DEMO_SLUG).first() or self._project(options["size"])
        user_model = get_user_model()
        Membership.objects.get_or_create(project=project, user=user_model.objects.get(username="coordinator"),
                                         defaults={"role": Membership.Role.COORDINATOR})
        self.stdout.write("Demo accounts (passwords are new on every run):")
        for name, password in passwords.items():
            self.stdout.write(f"  {name:<12} {password}")

    def _account(self, name: str, group: Group) -> str:
        user, _ = get_user_model().objects.get_or_create(username=name, defaults={"email": f"{name}@example.org"})
        password = secrets.token_urlsafe(9)
        user.set_password(password)
        user.is_staff = user.is_superuser = name == "admin"
        user.save()
        user.groups.add(group)
        return password

    def _project(self, size: int) -> Project:
        folder = settings.DATA_DIR / "demo"
        folder.mkdir(parents=True, exist_ok=True)
        scene = write_demo_scene(out_dir=folder, size_px=size)
        (folder / "truth.geojson").write_text(json.dumps(buildings_geojson(scene)))
        with eager_tasks(), transaction.atomic():
            # Tiled here rather than on the worker, so the tutorial's known tiles can be made from the truth.
            project = create_project(
                slug=DEMO_SLUG, name="Demo town, 2017", status=Project.Status.ACTIVE, redundancy=5,
                tile_size=256, overlap=32, gold_rate=0.1,
                question="Do you see destroyed buildings?",
                instructions="Two images of the same blocks: spring 2017, then autumn 2017. Some buildings were "
                             "destroyed in between: their roofs are gone and rubble lies where they stood. Put a "
                             "point on each destroyed building, on the first image where it is destroyed.")
            for when, path in zip(DATES, (scene.before, scene.after)):
                create_layer(project=project, date=when, staged=[stage_path(path)], source="generated demo scene")
        gold = mark_gold_tiles(project=project, scene=scene, every=GOLD_EVERY, answer_date=DATES[1])
        destroyed = sum(b.destroyed for b in scene.buildings)
        self.stdout.write(f"Demo project '{DEMO_SLUG}': {len(scene.buildings)} buildings, {destroyed} destroyed "
                          f"in the second date (truth in {folder / 'truth.geojson'}); {gold} known tiles.")
        return project


@contextmanager
def eager_tasks() -> Iterator[None]:
    """Run Celery tasks in this process while the block is open."""
    from config.celery import app

    before = app.conf.task_always_eager
    app.conf.task_always_eager = True
    try:
        yield
    finally:
        app.conf.task_always_eager = before


def mark_gold_tiles(*, project: Project, scene: DemoScene, every: int, answer_date: date) -> int:
    """Make every `every`-th tile a gold tile, its answer and marks taken from the scene's truth.

    A destroyed building is a mark when its centre lies inside the tile, at least a few metres
    from the edge (a building cut by the edge is whole in the neighbouring tile).
    """
    tiles = list(Tile.objects.filter(grid__project=project).order_by("row", "col"))
    destroyed = [b for b in scene.buildings if b.destroyed]
    made = 0
    for tile in tiles[every // 2::every]:
        pixel = (tile.maxx - tile.minx) / tile.size
        margin = 4.0
        marks = [[round((b.x - tile.minx) / pixel, 1), round((tile.maxy - b.y) / pixel, 1)] for b in destroyed
                 if tile.minx + margin <= b.x <= tile.maxx - margin and tile.miny + margin <= b.y <= tile.maxy - margin]
        GoldAnswer.objects.update_or_create(tile=tile, defaults={
            "answer": "destroyed" if marks else "no_damage", "marks": marks})
        Tile.objects.filter(pk=tile.pk).update(status=Tile.Status.GOLD)
        made += 1
    return made
