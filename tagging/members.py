"""Who has which role in a project: listing members, giving roles, taking people out.

A project always keeps at least one manager. Joining a public project as a volunteer and
invitations are in tagging/volunteers.py.
"""

from typing import Any

from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import Case, IntegerField, QuerySet, Value, When
from django.utils.translation import gettext as _

from config.errors import Conflict, NotFound
from tagging.models import Membership, Project


def _user(username: str) -> Any:
    user = get_user_model().objects.filter(username=username).first()
    if user is None:
        raise NotFound(_("There is no user '%(username)s'.") % {"username": username},
                       fields={"username": ["unknown"]})
    return user


def _check_not_last_manager(membership: Membership) -> None:
    if membership.role == Membership.Role.MANAGER and not Membership.objects.filter(
            project_id=membership.project_id, role=Membership.Role.MANAGER).exclude(pk=membership.pk).exists():
        raise Conflict(_("%(username)s is the project's last manager: appoint another manager first.")
                       % {"username": membership.user.username},
                       fields={"username": ["last manager"]}, code="last_manager")


def set_member_role(*, project: Project, username: str, role: str) -> tuple[Membership, bool]:
    """Give a user a role in the project, making them a member if needed; returns (membership, created).

    Raises NotFound for an unknown user, Conflict when it would demote the last manager. Locks the
    membership row.
    """
    user = _user(username)
    with transaction.atomic():
        membership = Membership.objects.select_for_update().filter(project=project, user=user).first()
        if membership is None:
            return Membership.objects.create(project=project, user=user, role=role), True
        if membership.role != role:
            _check_not_last_manager(membership)
            membership.role = role
            membership.save(update_fields=["role"])
    return membership, False


def remove_member(*, project: Project, username: str) -> None:
    """Take a user out of the project (their votes stay). Raises NotFound, or Conflict for the last manager."""
    user = _user(username)
    with transaction.atomic():
        membership = Membership.objects.select_for_update().filter(project=project, user=user).first()
        if membership is None:
            raise NotFound(_("%(username)s is not a member of this project.") % {"username": username},
                           fields={"username": ["not a member"]})
        _check_not_last_manager(membership)
        membership.delete()


def members_of(*, project: Project, role: str = "", search: str = "") -> QuerySet[Membership]:
    """Managers first, then coordinators, then volunteers, each by name."""
    rank = Case(When(role=Membership.Role.MANAGER, then=Value(0)), When(role=Membership.Role.COORDINATOR,
                then=Value(1)), default=Value(2), output_field=IntegerField())
    members = Membership.objects.filter(project=project).select_related("user")
    if role:
        members = members.filter(role=role)
    if search:
        members = members.filter(user__username__icontains=search)
    return members.annotate(rank=rank).order_by("rank", "user__username")
