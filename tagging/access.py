"""Who may see and manage a project. Every view goes through these."""

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.utils.translation import gettext as _

from config.errors import NotAllowed, NotFound
from imagery.models import Grid, Tile
from tagging import rows
from tagging.models import Membership, Project

AnyUser = AbstractBaseUser | AnonymousUser


def is_platform_admin(user: AnyUser) -> bool:
    return bool(user.is_authenticated and (user.is_superuser or user.has_perm("tagging.manage_any_project")))


def can_manage_project(user: AnyUser, project: Project) -> bool:
    """Admins manage every project; a project's managers manage theirs."""
    if is_platform_admin(user):
        return True
    return bool(user.is_authenticated and Membership.objects.filter(
        project=project, user=user, role=Membership.Role.MANAGER).exists())


def can_coordinate_project(user: AnyUser, project: Project) -> bool:
    """Coordinators review the consensus of their project; its managers and admins may too."""
    if is_platform_admin(user):
        return True
    return bool(user.is_authenticated and Membership.objects.filter(
        project=project, user=user, role__in=[Membership.Role.COORDINATOR, Membership.Role.MANAGER]).exists())


def can_view_project(user: AnyUser, project: Project) -> bool:
    """Signed-in users see public projects; private ones only their members and admins."""
    if not user.is_authenticated:
        return False
    if project.is_public or is_platform_admin(user):
        return True
    return Membership.objects.filter(project=project, user=user).exists()


def access_project(user: AnyUser, slug: str, *, manage: bool = False, coordinate: bool = False) -> Project:
    """The project, or NotFound when the user may not even see it, NotAllowed when they may not manage
    it (manage=True) or coordinate it (coordinate=True: coordinators, managers, admins)."""
    # Plain SQL (tagging.rows): every request of a volunteer's app starts here.
    row = rows.fetch_one(f"SELECT {rows.columns(Project, 'p')} FROM tagging_project p WHERE p.slug = %s", [slug],
                         prepare=True)
    project = rows.instance(Project, iter(row)) if row is not None else None
    if project is None or not can_view_project(user, project):
        raise NotFound(_("There is no project '%(project)s' that you can see.") % {"project": slug})
    if manage and not can_manage_project(user, project):
        raise NotAllowed(_("You may not manage the project '%(project)s'.") % {"project": slug})
    if coordinate and not can_coordinate_project(user, project):
        raise NotAllowed(_("Only the coordinators of the project '%(project)s' may see this.") % {"project": slug})
    return project


def access_tile_to_answer(user: AnyUser, tile_id: int) -> Tile:
    """The tile with its grid and project (tile.grid.project), or NotFound when the user may not see its project.

    imagery.api.access_tile in one plain query: every vote runs it (tagging.rows).
    """
    row = rows.fetch_one(f"""
        SELECT {rows.columns(Tile, "t")}, {rows.columns(Grid, "g")}, {rows.columns(Project, "p")}
        FROM imagery_tile t JOIN imagery_grid g ON g.id = t.grid_id JOIN tagging_project p ON p.id = g.project_id
        WHERE t.id = %s""", [tile_id], prepare=True)
    if row is None:
        raise NotFound(_("There is no tile %(tile)s that you can see.") % {"tile": tile_id})
    values = iter(row)
    tile, grid, project = rows.instance(Tile, values), rows.instance(Grid, values), rows.instance(Project, values)
    if not can_view_project(user, project):
        raise NotFound(_("There is no tile %(tile)s that you can see.") % {"tile": tile_id})
    grid.project, tile.grid = project, grid
    return tile
