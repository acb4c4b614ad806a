"""Every error message the API (or a page) shows goes through gettext, and arrives in the client's language.

The check reads the source: a message written as a plain string or an f-string straight into one of the
platform's exceptions (config.errors and its subclasses, DRF's exceptions, Django's ValidationError,
PermissionDenied and Http404) would reach an Arabic-speaking volunteer in English, and an f-string cannot
be translated at all. Messages go through _() with named placeholders:
``NotAllowed(_("You may not manage the project '%(project)s'.") % {"project": slug})``.
"""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest
from rest_framework import exceptions as drf_exceptions
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from tagging.models import Membership
from tests.clients import member
from tests.tagging.helpers import project_with_tiles

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("tagging", "imagery", "config")
GETTEXT = {"_", "gettext", "gettext_lazy", "ngettext", "ngettext_lazy", "pgettext", "pgettext_lazy", "npgettext",
           "npgettext_lazy"}
# The platform's own family is found in the source (subclasses live in several modules); DRF's and Django's by name.
PLATFORM_BASE = "PlatformError"
OTHERS = ({name for name, cls in inspect.getmembers(drf_exceptions, inspect.isclass)
           if issubclass(cls, drf_exceptions.APIException)}
          | {"ValidationError", "PermissionDenied", "Http404"})


def sources() -> list[Path]:
    return sorted(p for package in PACKAGES for p in (ROOT / package).rglob("*.py") if "migrations" not in p.parts)


def _name(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return None


def platform_exceptions(trees: dict[Path, ast.Module]) -> set[str]:
    """PlatformError and every class that derives from it, directly or not, in any of the modules."""
    classes = [node for tree in trees.values() for node in ast.walk(tree) if isinstance(node, ast.ClassDef)]
    found = {PLATFORM_BASE}
    while True:
        more = {c.name for c in classes if c.name not in found and any(_name(b) in found for b in c.bases)}
        if not more:
            return found
        found |= more


def is_translated(node: ast.expr) -> bool:
    """_("...") itself, or _("...") % {...}."""
    if isinstance(node, ast.Call):
        return _name(node.func) in GETTEXT
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mod):
        return is_translated(node.left)
    return False


def is_literal_text(node: ast.expr) -> bool:
    """Text written in the source: "...", f"...", "..." % x, "..." + x, "...".format(x)."""
    if isinstance(node, ast.Constant):
        return isinstance(node.value, str)
    if isinstance(node, ast.JoinedStr):
        return True
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mod | ast.Add):
        return is_literal_text(node.left) or is_literal_text(node.right)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "format":
        return is_literal_text(node.func.value)
    return False


def message_of(call: ast.Call) -> ast.expr | None:
    if call.args:
        return call.args[0]
    return next((k.value for k in call.keywords if k.arg in ("message", "detail")), None)


def untranslated(tree: ast.Module, exceptions: set[str]) -> list[tuple[int, str]]:
    """(line, what) for every exception made with a message that does not go through gettext."""
    found = []

    def check(call: ast.Call, what: str) -> None:
        message = message_of(call)
        if message is not None and not is_translated(message) and is_literal_text(message):
            found.append((call.lineno, f"{what}({ast.unparse(message)[:80]})"))

    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and _name(node.func) in exceptions:
            check(node, _name(node.func))
        if isinstance(node, ast.ClassDef) and any(_name(b) in exceptions for b in node.bases):
            # An exception class that words its own message: super().__init__("...").
            for inner in ast.walk(node):
                if (isinstance(inner, ast.Call) and isinstance(inner.func, ast.Attribute)
                        and inner.func.attr == "__init__" and isinstance(inner.func.value, ast.Call)
                        and _name(inner.func.value.func) == "super"):
                    check(inner, f"{node.name} super().__init__")
    return sorted(found)


def scan(files: list[Path], root: Path = ROOT) -> list[str]:
    """"file:line: Exception(message)" for every untranslated message in these files."""
    trees = {path: ast.parse(path.read_text(encoding="utf-8"), filename=str(path)) for path in files}
    exceptions = platform_exceptions(trees) | OTHERS
    return [f"{path.relative_to(root)}:{line}: {what}"
            for path, tree in trees.items() for line, what in untranslated(tree, exceptions)]


def test_the_scan_sees_the_exceptions_and_the_modules() -> None:
    files = sources()
    assert {"access.py", "projects.py", "api.py", "xyz.py", "errors.py"} <= {p.name for p in files}
    trees = {path: ast.parse(path.read_text(encoding="utf-8")) for path in files}
    assert {"PlatformError", "InvalidInput", "NotAllowed", "NotFound", "Conflict", "ImageryError",
            "ImportRejected", "ImageryUnavailable"} <= platform_exceptions(trees)
    assert {"ValidationError", "AuthenticationFailed", "PermissionDenied", "NotFound"} <= OTHERS


def test_every_error_message_goes_through_gettext() -> None:
    offenders = scan(sources())
    assert not offenders, "messages not wrapped in _() (use named placeholders):\n" + "\n".join(offenders)


UNTRANSLATED = [
    'raise NotAllowed("Only admins create projects.")',
    'raise NotAllowed(f"You may not manage the project \'{slug}\'.")',
    'raise InvalidInput(f"{name} must be an id.", fields={name: ["not an id"]})',
    'raise Conflict("Review %s was already undone." % pk)',
    'raise NotFound("There is no tile {}.".format(tile_id))',
    'raise NotFound(message="There is no " + kind)',
    'raise serializers.ValidationError("Give a date.")',
    'raise exceptions.AuthenticationFailed(detail=f"Invalid token {key}.")',
    'raise Gone(f"Tile {tile_id} is gone.")',
    'class Rejected(InvalidInput):\n    def __init__(self, n):\n        super().__init__(f"{n} bad rows.")',
]
TRANSLATED = [
    'raise NotAllowed(_("Only admins create projects."))',
    'raise NotAllowed(_("You may not manage the project \'%(project)s\'.") % {"project": slug})',
    'raise NotFound(gettext_lazy("There is no tile."), fields={"tile": ["not found"]})',
    'raise Http404(exc.message)',
    'raise InvalidInput(refused, fields={"action": ["not for a tile"]})',
    'raise ValueError(f"{name} must lie in [0, {size})")',  # not a message for a person: a bug
]


@pytest.mark.parametrize("source", UNTRANSLATED)
def test_the_scan_finds_a_message_written_in_english(tmp_path, source: str) -> None:
    """Gone stands for a subclass declared in another module, as ImageryError is."""
    (tmp_path / "errors.py").write_text("class PlatformError(Exception): ...\nclass Gone(NotFound): ...\n"
                                        "class NotFound(PlatformError): ...\nclass InvalidInput(PlatformError): ...\n"
                                        "class NotAllowed(PlatformError): ...\nclass Conflict(PlatformError): ...\n")
    (tmp_path / "views.py").write_text(source + "\n")
    found = scan(sorted(tmp_path.glob("*.py")), tmp_path)
    assert len(found) == 1 and found[0].startswith("views.py:"), found


@pytest.mark.parametrize("source", TRANSLATED)
def test_the_scan_lets_a_translated_message_pass(tmp_path, source: str) -> None:
    (tmp_path / "errors.py").write_text("class PlatformError(Exception): ...\nclass NotFound(PlatformError): ...\n")
    (tmp_path / "views.py").write_text(source + "\n")
    assert scan(sorted(tmp_path.glob("*.py")), tmp_path) == []


# --- what a client sees -----------------------------------------------------------------------------------------

@pytest.mark.django_db
def test_a_volunteer_refused_a_managers_endpoint_reads_why_in_arabic(django_user_model) -> None:
    # Public, active projects: a volunteer may see them, not manage them.
    volunteer = member(django_user_model, project_with_tiles("mosul"), Membership.Role.VOLUNTEER, "amal")
    Membership.objects.create(project_id=project_with_tiles("homs").pk, user=volunteer,
                              role=Membership.Role.COORDINATOR)
    token = f"Token {Token.objects.create(user=volunteer).key}"
    arabic = APIClient(HTTP_AUTHORIZATION=token, HTTP_ACCEPT_LANGUAGE="ar")
    english = APIClient(HTTP_AUTHORIZATION=token)

    refused = arabic.get("/api/v1/projects/mosul/settings/")
    assert refused.status_code == 403
    assert refused["Content-Language"] == "ar"
    assert refused.json()["error"] == {"code": "permission_denied", "fields": {},
                                       "message": "لا يحقّ لك إدارة المشروع «mosul»."}
    assert english.get("/api/v1/projects/mosul/settings/").json()["error"]["message"] == (
        "You may not manage the project 'mosul'.")

    # Coordinating is not managing either; and a message with a choice of words stays one whole sentence.
    invite = arabic.post("/api/v1/projects/homs/invitations/", {"role": "manager"}, format="json")
    assert invite.status_code == 403
    assert invite.json()["error"]["message"] == "لا يحقّ لك دعوة مديرين إلى المشروع «homs»."
    assert english.post("/api/v1/projects/homs/invitations/", {"role": "manager"}, format="json").json()[
        "error"]["message"] == "You may not invite managers to 'homs'."
