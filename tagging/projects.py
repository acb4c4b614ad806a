"""Creating and configuring projects."""

from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.utils.text import slugify

from config.errors import Conflict, InvalidInput
from tagging.models import DEFAULT_ANSWERS, Membership, Project

_KNOWN = {answer["key"]: answer for answer in DEFAULT_ANSWERS}
MAX_ANSWERS = 12


def answers_from_keys(keys: list[str]) -> list[dict[str, Any]]:
    """Answer definitions for keys such as destroyed,damaged,no_damage,cant_tell."""
    answers = []
    for key in keys:
        key = key.strip()
        known = _KNOWN.get(key)
        answers.append(dict(known) if known else {
            "key": key, "label": key.replace("_", " ").capitalize(),
            "damage": key in {"destroyed", "damaged", "damage"}, "abstain": key in {"cant_tell", "unsure", "unknown"}})
    return answers


def check_answers(answers: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Normalised answers, or InvalidInput naming what is wrong."""
    if not isinstance(answers, list) or not 2 <= len(answers) <= MAX_ANSWERS:
        raise InvalidInput(f"A project needs 2 to {MAX_ANSWERS} answers.", fields={"answers": ["count"]})
    clean, seen = [], set()
    for answer in answers:
        key = str(answer.get("key", "")).strip() if isinstance(answer, dict) else ""
        if not key or slugify(key).replace("-", "_") != key:
            raise InvalidInput(f"Answer key '{key}' must be a short identifier like no_damage.",
                               fields={"answers": ["bad key"]})
        if key in seen:
            raise InvalidInput(f"Answer key '{key}' appears twice.", fields={"answers": ["duplicate"]})
        seen.add(key)
        clean.append({"key": key, "label": str(answer.get("label") or key)[:80],
                      "damage": bool(answer.get("damage")), "abstain": bool(answer.get("abstain"))})
    if sum(a["abstain"] for a in clean) > 1:
        raise InvalidInput("At most one answer can be an abstention.", fields={"answers": ["abstain"]})
    if len(clean) - sum(a["abstain"] for a in clean) < 2:
        raise InvalidInput("A project needs at least two answers that are not abstentions.",
                           fields={"answers": ["abstain"]})
    return clean


def create_project(*, slug: str, name: str, user: AbstractBaseUser | None = None,
                   answers: list[dict[str, Any]] | None = None, tile_size: int = 512, overlap: int = 64,
                   redundancy: int = 5, **options: Any) -> Project:
    """Create a project (status draft); its creator becomes its manager. Raises InvalidInput or Conflict."""
    if slugify(slug) != slug or not slug:
        raise InvalidInput(f"'{slug}' is not a valid slug: use lowercase letters, digits and hyphens.",
                           fields={"slug": ["invalid"]})
    if not 64 <= tile_size <= 4096:
        raise InvalidInput("The tile size must be between 64 and 4096 pixels.", fields={"tile_size": ["range"]})
    if not 0 <= overlap < tile_size // 2:
        raise InvalidInput("The overlap must be at least 0 and less than half the tile size.",
                           fields={"overlap": ["range"]})
    if not 1 <= redundancy <= 100:
        raise InvalidInput("Redundancy must be between 1 and 100 volunteers per tile.",
                           fields={"redundancy": ["range"]})
    answers = check_answers(answers if answers is not None else [dict(a) for a in DEFAULT_ANSWERS])
    try:
        with transaction.atomic():
            project = Project.objects.create(slug=slug, name=name or slug, answers=answers, tile_size=tile_size,
                                             overlap=overlap, redundancy=redundancy, created_by=user, **options)
            if user is not None:
                Membership.objects.create(project=project, user=user, role=Membership.Role.MANAGER)
    except IntegrityError as exc:
        raise Conflict(f"A project with the slug '{slug}' exists already.", fields={"slug": ["taken"]}) from exc
    return project
