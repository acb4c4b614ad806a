"""Demo accounts and a demo project with generated before/after imagery whose truth is known."""

import json
import secrets
from argparse import ArgumentParser
from datetime import date
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.core.management.base import BaseCommand
from django.db import transaction

from imagery.ingest import create_layer, stage_path
from imagery.synthetic import buildings_geojson, write_demo_scene
from tagging.models import Membership, Project
from tagging.projects import create_project

DEMO_SLUG = "demo"
DATES = (date(2017, 5, 1), date(2017, 10, 20))


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
        with transaction.atomic():
            project = create_project(
                slug=DEMO_SLUG, name="Demo town, 2017", status=Project.Status.ACTIVE, redundancy=5,
                question="Do you see destroyed buildings in the second image?",
                instructions="Compare the two dates. Click each building that is rubble in the later image.")
            for when, path in zip(DATES, (scene.before, scene.after)):
                create_layer(project=project, date=when, staged=[stage_path(path)], source="generated demo scene")
        destroyed = sum(b.destroyed for b in scene.buildings)
        self.stdout.write(f"Demo project '{DEMO_SLUG}': {len(scene.buildings)} buildings, {destroyed} destroyed "
                          f"in the second date (truth in {folder / 'truth.geojson'}); tiling on the worker.")
        return project
