"""What a volunteer does besides tagging: the tutorial, their progress, invitations, leaving.

A volunteer joins a project by starting on it (the tagging page, the tutorial) or by an
invitation for a private project. Practice tiles are the project's gold tiles: answering one
in the tutorial stores no vote, but the tile counts as seen (assignment.ensure_seen), so it is
never served to that volunteer later and their vote on it is refused (they have seen its answer).
"""

import secrets
from collections import Counter
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import Count, Q, QuerySet
from django.utils import timezone
from django.utils.translation import gettext as _

from config.errors import Conflict, NotFound
from imagery.models import Tile
from tagging.assignment import ensure_seen
from tagging.classifications import MarkInput, check_classification, compare_with_gold
from tagging.models import Classification, GoldAnswer, Invitation, Membership, Project


def join_project(*, volunteer: AbstractBaseUser, project: Project) -> Membership:
    """The volunteer's membership, made on first use (a public project is open to every signed-in user)."""
    membership, _ = Membership.objects.get_or_create(project=project, user=volunteer)
    return membership


def _golds(project: Project) -> QuerySet[GoldAnswer]:
    return GoldAnswer.objects.filter(tile__grid__project=project).select_related("tile").order_by("tile_id")


def _practice_golds(project: Project) -> list[GoldAnswer]:
    count = settings.TUTORIAL_PRACTICE_TILES
    with_marks = list(_golds(project).exclude(marks=[])[:count])
    without = list(_golds(project).filter(marks=[])[:count])
    picked = with_marks[:max(count - 1, 1)] + without[:1]
    return (picked + [g for g in with_marks + without if g not in picked])[:count]


def practice_tiles(*, project: Project) -> list[Tile]:
    """The tutorial's practice tiles: gold tiles with buildings to find first, then one without."""
    return [gold.tile for gold in _practice_golds(project)]


EXAMPLE_CANDIDATES = 100  # the examples are the known tiles with most buildings among this many


def example_tiles(*, project: Project, count: int = 2, practice: list[Tile] | None = None) -> list[GoldAnswer]:
    """Known tiles shown with their answers in the tutorial: gold tiles with buildings, other than the practice ones."""
    shown = {tile.pk for tile in (practice if practice is not None else practice_tiles(project=project))}
    golds = _golds(project).exclude(marks=[]).exclude(tile_id__in=shown)[:EXAMPLE_CANDIDATES]
    return sorted(golds, key=lambda g: -len(g.marks))[:count]


def check_practice(*, volunteer: AbstractBaseUser, project: Project, tile_id: int, answer: str,
                   marks: list[MarkInput]) -> dict[str, Any]:
    """Feedback on a practice answer. Nothing is stored but the fact that the volunteer has seen the tile."""
    # Only the tutorial's own tiles: feedback on any tile would tell a volunteer which tiles are gold.
    gold = next((gold for gold in _practice_golds(project) if gold.tile_id == tile_id), None)
    if gold is None:
        raise NotFound(_("Tile %(tile)s is not a practice tile of this project.") % {"tile": tile_id})
    check_classification(project=project, tile=gold.tile, answer=answer, marks=marks, seconds=None)
    ensure_seen(volunteer=volunteer, project=project, tile_ids=[tile_id])
    return compare_with_gold(gold=gold, answer=answer, marks=[(m.x, m.y) for m in marks])


def finish_tutorial(*, volunteer: AbstractBaseUser, project: Project) -> Membership:
    """Record the tutorial as done. Its tiles (practice and examples) count as seen: their answers were shown."""
    membership = join_project(volunteer=volunteer, project=project)
    practice = practice_tiles(project=project)
    shown = [t.pk for t in practice] + [g.tile_id for g in example_tiles(project=project, practice=practice)]
    ensure_seen(volunteer=volunteer, project=project, tile_ids=shown)
    if membership.tutorial_done_at is None:
        membership.tutorial_done_at = timezone.now()
        membership.save(update_fields=["tutorial_done_at"])
    return membership


def volunteer_progress(*, volunteer: AbstractBaseUser, project: Project, recent: int = 500) -> dict[str, Any]:
    """"How am I doing": tiles today and in total, agreement with the crowd, gold score, project progress.

    Agreement is measured on the volunteer's last `recent` tiles that at least two other
    volunteers have answered: the share where their answer is the others' most common one
    (abstentions left out). Only tiles the volunteer has finished are looked at, so nothing
    here tells them what others said on a tile they still have to do.
    """
    mine = Classification.objects.filter(project=project, volunteer=volunteer)
    today = timezone.now().replace(hour=0, minute=0, second=0, microsecond=0)
    totals = mine.aggregate(total=Count("pk"), today=Count("pk", filter=Q(created_at__gte=today)),
                            flagged=Count("pk", filter=Q(too_fast=True)))
    abstain = {a["key"] for a in project.answers if a.get("abstain")}
    agreement = _agreement(mine, abstain, recent)
    gold = _gold_score(mine)
    tiles = Tile.objects.filter(grid__project=project).aggregate(
        total=Count("pk"), retired=Count("pk", filter=Q(status=Tile.Status.RETIRED)))
    votes = Classification.objects.filter(project=project, too_fast=False).count()
    open_tiles = tiles["total"] - tiles["retired"]
    return {
        "tiles_today": totals["today"], "tiles_total": totals["total"], "too_fast": totals["flagged"],
        "agreement": agreement, "gold": gold,
        "project": {"tiles": tiles["total"], "tiles_retired": tiles["retired"], "votes": votes,
                    "votes_needed": tiles["total"] * project.redundancy, "tiles_open": open_tiles},
    }


def _agreement(mine: Any, abstain: set[str], recent: int) -> dict[str, Any]:
    latest = dict(mine.exclude(answer__in=abstain).order_by("-created_at").values_list("tile_id", "answer")[:recent])
    others: dict[int, Counter[str]] = {}
    for tile_id, answer in (Classification.objects.filter(tile_id__in=list(latest), too_fast=False)
                            .exclude(answer__in=abstain).values_list("tile_id", "answer")):
        others.setdefault(tile_id, Counter())[answer] += 1
    compared = agreed = 0
    for tile_id, answer in latest.items():
        counts = others.get(tile_id, Counter())
        counts[answer] -= 1  # their own vote is among the tile's votes
        if sum(counts.values()) < 2:
            continue
        compared += 1
        top = max(counts.values())
        agreed += counts[answer] == top
    return {"tiles_compared": compared, "rate": agreed / compared if compared else None}


def _gold_score(mine: Any) -> dict[str, Any]:
    rows = list(mine.filter(is_gold=True, tile__gold__isnull=False).values_list("answer", "tile__gold__answer"))
    right = sum(answer == known for answer, known in rows)
    return {"tiles": len(rows), "correct": right, "rate": right / len(rows) if rows else None}


def create_invitation(*, project: Project, invited_by: AbstractBaseUser, role: str = Membership.Role.VOLUNTEER,
                      note: str = "", days: int | None = None) -> Invitation:
    return Invitation.objects.create(
        project=project, token=secrets.token_urlsafe(24), role=role, note=note, invited_by=invited_by,
        expires_at=timezone.now() + timedelta(days=days or settings.INVITATION_DAYS))


def find_invitation(*, token: str) -> Invitation:
    invitation = Invitation.objects.select_related("project").filter(token=token).first()
    if invitation is None:
        raise NotFound(_("This invitation link is not valid. Ask the project's coordinators for a new one."))
    return invitation


def accept_invitation(*, token: str, volunteer: AbstractBaseUser) -> Membership:
    """Join the invitation's project. A link works once (its own invitee may follow it again) and until it expires."""
    with transaction.atomic():
        invitation = Invitation.objects.select_for_update().filter(token=token).select_related("project").first()
        if invitation is None:
            raise NotFound(_("This invitation link is not valid. Ask the project's coordinators for a new one."))
        if invitation.accepted_by_id not in (None, volunteer.pk):
            raise Conflict(_("This invitation has already been used. Ask the project's coordinators for a new one."))
        if invitation.accepted_by_id is None and invitation.expires_at <= timezone.now():
            raise Conflict(_("This invitation has expired. Ask the project's coordinators for a new one."))
        membership, created = Membership.objects.get_or_create(
            project=invitation.project, user=volunteer, defaults={"role": invitation.role})
        if invitation.accepted_by_id is None:
            invitation.accepted_by, invitation.accepted_at = volunteer, timezone.now()
            invitation.save(update_fields=["accepted_by", "accepted_at"])
    return membership
