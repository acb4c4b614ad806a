"""Creating and configuring projects: slugs, answers, settings and the status a project is in."""

from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.utils.text import slugify
from django.utils.translation import gettext as _

from config.errors import Conflict, InvalidInput
from imagery.models import Tile
from tagging.models import DEFAULT_ANSWERS, Classification, GoldAnswer, Membership, Project

_KNOWN = {answer["key"]: answer for answer in DEFAULT_ANSWERS}
MAX_ANSWERS = 12

# Literal path segments under /projects/ and /api/v1/projects/ (config/urls.py): a project with one of these
# slugs would be hidden by the page of that name (/projects/new/ is the form that creates projects), or would
# read as one of a project's own pages. tests/tagging/test_projects.py checks this list against the URLs.
RESERVED_SLUGS = frozenset({
    "consensus", "dashboard", "done", "gold", "invitations", "layers", "map", "me", "members", "new", "next",
    "practice", "publish", "queue", "recompute", "reliability", "results", "review", "reviews", "settings", "status",
    "tag", "tasks", "tiles", "tutorial", "upload", "volunteers",
})


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
        raise InvalidInput(_("A project needs 2 to %(most)s answers.") % {"most": MAX_ANSWERS},
                           fields={"answers": ["count"]})
    clean, seen = [], set()
    for answer in answers:
        key = str(answer.get("key", "")).strip() if isinstance(answer, dict) else ""
        if not key or slugify(key).replace("-", "_") != key:
            raise InvalidInput(_("Answer key '%(key)s' must be a short identifier like no_damage.") % {"key": key},
                               fields={"answers": ["bad key"]})
        if key in seen:
            raise InvalidInput(_("Answer key '%(key)s' appears twice.") % {"key": key},
                               fields={"answers": ["duplicate"]})
        seen.add(key)
        clean.append({"key": key, "label": str(answer.get("label") or key)[:80],
                      "damage": bool(answer.get("damage")), "abstain": bool(answer.get("abstain"))})
    if sum(a["abstain"] for a in clean) > 1:
        raise InvalidInput(_("At most one answer can be an abstention."), fields={"answers": ["abstain"]})
    if len(clean) - sum(a["abstain"] for a in clean) < 2:
        raise InvalidInput(_("A project needs at least two answers that are not abstentions."),
                           fields={"answers": ["abstain"]})
    return clean


def check_slug(slug: str) -> str:
    """The slug, or InvalidInput (field "slug") when it is malformed or names one of the site's own pages."""
    if slugify(slug) != slug or not slug:
        raise InvalidInput(_("'%(slug)s' is not a valid slug: use lowercase letters, digits and hyphens.")
                           % {"slug": slug},
                           fields={"slug": ["invalid"]})
    if slug in RESERVED_SLUGS:
        raise InvalidInput(reserved_slug_message(slug), fields={"slug": ["reserved"]})
    return slug


def reserved_slug_message(slug: str) -> str:
    return _("'%(slug)s' is reserved: /projects/%(slug)s/ is a page of the site. Choose another slug.") % {
        "slug": slug}


def create_project(*, slug: str, name: str, user: AbstractBaseUser | None = None,
                   answers: list[dict[str, Any]] | None = None, tile_size: int = 512, overlap: int = 64,
                   redundancy: int = 5, **options: Any) -> Project:
    """Create a project (status draft); its creator becomes its manager. Raises InvalidInput or Conflict."""
    check_slug(slug)
    if not 64 <= tile_size <= 4096:
        raise InvalidInput(_("The tile size must be between 64 and 4096 pixels."), fields={"tile_size": ["range"]})
    if not 0 <= overlap < tile_size // 2:
        raise InvalidInput(_("The overlap must be at least 0 and less than half the tile size."),
                           fields={"overlap": ["range"]})
    if not 1 <= redundancy <= 100:
        raise InvalidInput(_("Redundancy must be between 1 and 100 volunteers per tile."),
                           fields={"redundancy": ["range"]})
    answers = check_answers(answers if answers is not None else [dict(a) for a in DEFAULT_ANSWERS])
    try:
        with transaction.atomic():
            project = Project.objects.create(slug=slug, name=name or slug, answers=answers, tile_size=tile_size,
                                             overlap=overlap, redundancy=redundancy, created_by=user, **options)
            if user is not None:
                Membership.objects.create(project=project, user=user, role=Membership.Role.MANAGER)
    except IntegrityError as exc:
        raise Conflict(_("A project with the slug '%(slug)s' exists already.") % {"slug": slug},
                       fields={"slug": ["taken"]}) from exc
    return project


# --- settings ------------------------------------------------------------------------------------------------------

SETTING_FIELDS = ("name", "question", "answers", "instructions", "redundancy", "retire_confidence", "scheduling",
                  "gold_rate", "is_public")


def _meaning(answers: list[dict[str, Any]]) -> list[tuple[str, bool, bool]]:
    return [(a["key"], bool(a.get("damage")), bool(a.get("abstain"))) for a in answers]


def answers_locked(*, project: Project) -> bool:
    """Once a vote or a gold answer names the answer keys, the keys and what they mean are fixed."""
    return (Classification.objects.filter(project=project).exists()
            or GoldAnswer.objects.filter(tile__grid__project=project).exists())


def _check_ranges(changes: dict[str, Any]) -> None:
    if "redundancy" in changes and not 1 <= changes["redundancy"] <= 100:
        raise InvalidInput(_("Redundancy must be between 1 and 100 volunteers per tile."),
                           fields={"redundancy": ["range"]})
    confidence = changes.get("retire_confidence")
    if confidence is not None and not 0.5 <= confidence <= 1:
        raise InvalidInput(_("The early retirement confidence must be between 0.5 and 1, or empty for none."),
                           fields={"retire_confidence": ["range"]})
    if "gold_rate" in changes and not 0 <= changes["gold_rate"] <= 1:
        raise InvalidInput(_("The gold rate must be between 0 and 1."), fields={"gold_rate": ["range"]})
    for name in ("name", "question"):
        if name in changes and not str(changes[name]).strip():
            blank = _("The name cannot be empty.") if name == "name" else _("The question cannot be empty.")
            raise InvalidInput(blank, fields={name: ["blank"]})


def update_project(*, project: Project, changes: dict[str, Any]) -> Project:
    """Change a project's settings (SETTING_FIELDS). Raises InvalidInput, or Conflict for answer keys in use.

    Labels of answers can always change; their keys, order and meaning (damage, abstention) only
    until the first vote or gold answer. A new redundancy applies to the tiles at once: open tiles
    that have enough votes retire, and retired tiles short of votes reopen (unless the consensus
    retired them early, being sure enough).
    """
    changes = {key: value for key, value in changes.items() if key in SETTING_FIELDS}
    _check_ranges(changes)
    if "answers" in changes:
        changes["answers"] = check_answers(changes["answers"])
        if _meaning(changes["answers"]) != _meaning(project.answers) and answers_locked(project=project):
            raise Conflict(_("Volunteers have already answered with this project's answer keys, so the keys, their "
                             "order and what they mean (damage, can't tell) can no longer change; their labels "
                             "can."),
                           fields={"answers": ["keys in use"]}, code="answers_in_use")
    with transaction.atomic():
        for key, value in changes.items():
            setattr(project, key, value)
        if changes:
            project.save(update_fields=list(changes))
        if "redundancy" in changes:
            _apply_redundancy(project)
    return project


def _apply_redundancy(project: Project) -> None:
    tiles = Tile.objects.filter(grid__project=project)
    tiles.filter(status=Tile.Status.OPEN, vote_count__gte=project.redundancy).update(status=Tile.Status.RETIRED)
    short = tiles.filter(status=Tile.Status.RETIRED, vote_count__lt=project.redundancy)
    if project.retire_confidence is not None:
        short = short.exclude(consensus__confidence__gte=project.retire_confidence)
    short.update(status=Tile.Status.OPEN)


# --- status --------------------------------------------------------------------------------------------------------

DRAFT, ACTIVE, PAUSED, FINISHED = (Project.Status.DRAFT, Project.Status.ACTIVE, Project.Status.PAUSED,
                                   Project.Status.FINISHED)
TRANSITIONS: dict[str, set[str]] = {
    DRAFT: {ACTIVE},
    ACTIVE: {PAUSED, FINISHED, DRAFT},
    PAUSED: {ACTIVE, FINISHED, DRAFT},
    FINISHED: {ACTIVE, PAUSED},
}


def allowed_statuses(project: Project) -> list[str]:
    """The statuses the project can move to from its own, sorted."""
    return sorted(TRANSITIONS[project.status])


def change_status(*, project: Project, new: str) -> Project:
    """Open, pause, finish or reopen a project; the same status again changes nothing. Raises Conflict.

    Opening needs tiles to tag; going back to draft is only possible before the first vote.
    """
    if new not in Project.Status.values:
        raise InvalidInput(_("'%(status)s' is not a project status; use one of %(choices)s.")
                           % {"status": new, "choices": ", ".join(Project.Status.values)},
                           fields={"status": ["invalid choice"]})
    if new == project.status:
        return project
    if new not in TRANSITIONS[project.status]:
        allowed = ", ".join(allowed_statuses(project))
        raise Conflict(_("A %(status)s project cannot become %(new)s; it can become: %(allowed)s.")
                       % {"status": project.status, "new": new, "allowed": allowed},
                       fields={"status": ["transition"]}, code="transition")
    if new == ACTIVE and not Tile.objects.filter(grid__project=project).exists():
        raise Conflict(_("The project has no tiles yet: upload imagery and let it be cut into tiles before opening."),
                       fields={"status": ["no tiles"]}, code="no_tiles")
    if new == DRAFT and Classification.objects.filter(project=project).exists():
        raise Conflict(_("Volunteers have voted on this project: it cannot go back to draft. Pause it instead."),
                       fields={"status": ["has votes"]}, code="has_votes")
    Project.objects.filter(pk=project.pk).update(status=new)
    project.status = new
    return project
