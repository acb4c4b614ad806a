"""Who may do what: every role against every endpoint and page of a private project.

Roles: anonymous, a volunteer of the project, a volunteer of another project, a coordinator of
the project, a coordinator of another project, a manager of the project, an admin. Each
endpoint has a level: "view" (members of the project), "coordinate" (coordinators, managers,
admins), "manage" (managers, admins), "admin" (platform admins). A refusal must be the right
one: 401/403 (API) or a sign-in redirect (page) for anonymous, 404 for those who may not even
see the private project, 403 for members below the level. Nothing answers 5xx.
"""

import pytest
from django.contrib.auth.models import Group, Permission
from django.test import Client
from rest_framework.test import APIClient

from imagery.models import ImageryLayer, Tile
from tagging.models import Membership
from tests.tagging.helpers import project_with_tiles

pytestmark = pytest.mark.django_db

LEVELS = {"view": 0, "coordinate": 1, "manage": 2, "admin": 3}
# role: (member of the private project?, its level there)
ROLES = {
    "anonymous": (False, -1),
    "volunteer": (True, LEVELS["view"]),
    "volunteer_elsewhere": (False, -1),
    "coordinator": (True, LEVELS["coordinate"]),
    "coordinator_elsewhere": (False, -1),
    "manager": (True, LEVELS["manage"]),
    "admin": (True, LEVELS["admin"]),
}
API = [  # (level, method, path, body)
    ("view", "get", "/api/v1/projects/p/", None),
    ("view", "get", "/api/v1/projects/p/tiles/", None),
    ("view", "get", "/api/v1/tiles/{tile}/", None),
    ("view", "post", "/api/v1/projects/p/tasks/next/", {}),
    ("view", "get", "/api/v1/projects/p/tutorial/", None),
    ("view", "get", "/api/v1/projects/p/me/", None),
    ("view", "get", "/api/v1/projects/p/layers/", None),
    ("coordinate", "get", "/api/v1/projects/p/consensus/", None),
    ("coordinate", "get", "/api/v1/projects/p/consensus/tiles.geojson", None),
    ("coordinate", "get", "/api/v1/projects/p/consensus/tiles.csv", None),
    ("coordinate", "get", "/api/v1/projects/p/consensus/buildings.geojson", None),
    ("coordinate", "get", "/api/v1/projects/p/consensus/buildings.csv", None),
    ("coordinate", "get", "/api/v1/projects/p/consensus/buildings.kml", None),
    ("coordinate", "get", "/api/v1/projects/p/consensus/provenance.json", None),
    ("coordinate", "get", "/api/v1/projects/p/volunteers/reliability/", None),
    ("coordinate", "get", "/api/v1/tiles/{tile}/classifications/", None),
    ("coordinate", "get", "/api/v1/projects/p/dashboard/", None),
    ("coordinate", "get", "/api/v1/projects/p/map/tiles.geojson", None),
    ("coordinate", "get", "/api/v1/projects/p/map/buildings.geojson", None),
    ("coordinate", "get", "/api/v1/projects/p/review/queue/", None),
    ("coordinate", "get", "/api/v1/projects/p/reviews/", None),
    ("coordinate", "post", "/api/v1/projects/p/reviews/", {}),
    ("coordinate", "get", "/api/v1/projects/p/evidence.zip", None),
    # The results: coordinators at any time; volunteers only once published (p is not), see test_results.py.
    ("coordinate", "get", "/api/v1/projects/p/results/", None),
    ("coordinate", "get", "/api/v1/projects/p/results/tiles.geojson", None),
    ("coordinate", "get", "/api/v1/projects/p/results/buildings.geojson", None),
    ("manage", "get", "/api/v1/projects/p/settings/", None),
    ("manage", "get", "/api/v1/projects/p/members/", None),
    ("manage", "post", "/api/v1/projects/p/status/", {"status": "no-such-status"}),
    ("manage", "put", "/api/v1/tiles/{tile}/gold/", {"answer": "no-such-answer"}),
    ("manage", "post", "/api/v1/projects/p/layers/", {}),
    ("admin", "post", "/api/v1/projects/", {}),
]
PAGES = [
    ("view", "/projects/p/"),
    ("view", "/projects/p/tag/"),
    ("view", "/projects/p/me/"),
    ("coordinate", "/projects/p/dashboard/"),
    ("coordinate", "/projects/p/map/"),
    ("coordinate", "/projects/p/review/"),
    ("coordinate", "/projects/p/results/"),  # until published
    ("manage", "/projects/p/settings/"),
    ("manage", "/projects/p/upload/"),
    ("manage", "/projects/p/gold/"),
    ("manage", "/projects/p/members/"),
    ("admin", "/projects/new/"),
]


@pytest.fixture
def people(django_user_model) -> dict:
    project_with_tiles("p", is_public=False)
    project_with_tiles("q", is_public=False)
    users = {"anonymous": None}
    for role in ROLES:
        if role == "anonymous":
            continue
        users[role] = django_user_model.objects.create_user(role, password="pw-123456")
    memberships = {"volunteer": ("p", "volunteer"), "volunteer_elsewhere": ("q", "volunteer"),
                   "coordinator": ("p", "coordinator"), "coordinator_elsewhere": ("q", "coordinator"),
                   "manager": ("p", "manager")}
    for role, (slug, member_role) in memberships.items():
        Membership.objects.create(project_id=_project_id(slug), user=users[role], role=member_role)
    admins, _ = Group.objects.get_or_create(name="admins")
    admins.permissions.add(Permission.objects.get(codename="manage_any_project"))
    users["admin"].groups.add(admins)
    return users


def _project_id(slug: str) -> int:
    return ImageryLayer.objects.filter(project__slug=slug).values_list("project_id", flat=True).first()


def expected(role: str, level: str, *, page: bool) -> str:
    member, own = ROLES[role]
    if role == "anonymous":
        return "login"
    if level == "admin":
        return "allowed" if role == "admin" else "forbidden"
    if not member:
        return "hidden"
    return "allowed" if own >= LEVELS[level] else "forbidden"


def outcome(status: int, location: str, *, page: bool) -> str:
    assert status < 500, status
    if page and status == 302 and "/accounts/login/" in location:
        return "login"
    if status == 404:
        return "hidden"
    if status in (401, 403):
        return "forbidden"
    return "allowed"


@pytest.mark.parametrize("role", list(ROLES))
def test_the_api_matrix(people, role) -> None:
    tile = Tile.objects.filter(grid__project__slug="p").first()
    api = APIClient()
    if people[role] is not None:
        api.force_authenticate(people[role])
    got, want = {}, {}
    for level, method, path, body in API:
        url = path.format(tile=tile.pk)
        response = getattr(api, method)(url, body, format="json") if body is not None else getattr(api, method)(url)
        result = outcome(response.status_code, response.get("Location", ""), page=False)
        if role == "anonymous":
            result = "login" if response.status_code in (401, 403) else result
        got[f"{method.upper()} {path}"] = result
        want[f"{method.upper()} {path}"] = expected(role, level, page=False)
    assert got == want


@pytest.mark.parametrize("role", list(ROLES))
def test_the_page_matrix(people, role) -> None:
    browser = Client()
    if people[role] is not None:
        browser.force_login(people[role])
    got, want = {}, {}
    for level, path in PAGES:
        response = browser.get(path)
        got[path] = outcome(response.status_code, response.get("Location", ""), page=True)
        want[path] = expected(role, level, page=True)
    assert got == want
