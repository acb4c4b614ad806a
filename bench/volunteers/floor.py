"""The floor of a vote on this stack: the product's own SQL, called from the thinnest Django views.

The volunteers' API spends its Python in Django REST Framework (the request's wrapping, authentication,
throttling, rendering) and in the product's model instances. These two views do the same work in the
database and next to nothing in Python, so their votes per second bound what a rewrite of the API's Python
could reach on this server, Django and database:

- floor_next: the token's user (an in-process dict, never re-checked: no account is deleted during a
  benchmark), the API's claim statement (tagging.assignment.CLAIM_BY_SLUG: the project by its slug,
  tagging_next_tile() with the project's settings, the tile and its images), the API's next-tile JSON
  (its lease without the expiry);
- floor_submit: the token's user, the API's vote statement (tagging.classifications.VOTE_SQL: the tile
  with its grid, project and gold answer, the checks, tagging_cast_vote() with the marks' ground
  coordinates), the consensus update scheduled after commit exactly as the API does (tagging.tile_updates),
  a short JSON answer.

No throttle, no input checks in Python, no error messages: a floor, not an API.
Its votes are real votes on the bench's project (the same functions write them), so the run's checks count
them with the others.
"""

import json
import random
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Model
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt

from imagery.models import Grid, Tile
from tagging import assignment, classifications, rows, tile_updates
from tagging.models import GoldAnswer, Project

_users: dict[str, int] = {}


def _position(model: type[Model], name: str) -> int:
    return [field.attname for field in model._meta.concrete_fields].index(name)


# CLAIM_BY_SLUG's columns: the project's, open, the lease's id, gold, the images, the tile's.
OPEN = len(Project._meta.concrete_fields)
QUESTION, ANSWERS = _position(Project, "question"), _position(Project, "answers")
TILE_ID, TILE_COL, TILE_ROW, TILE_SIZE = (OPEN + 4 + _position(Tile, name) for name in ("id", "col", "row", "size"))
# VOTE_SQL's columns: the tile's, the grid's, the project's, the gold answer's, then its own; the vote's last.
GOLD_ANSWER = sum(len(model._meta.concrete_fields) for model in (Tile, Grid, Project)) + _position(GoldAnswer, "answer")


def _user(request: HttpRequest) -> int | None:
    key = request.META.get("HTTP_AUTHORIZATION", "")[len("Token "):]
    if key not in _users:
        row = rows.fetch_one("SELECT user_id FROM authtoken_token WHERE key = %s", [key])
        if row is None:
            return None
        _users[key] = row[0]
    return _users[key]


@csrf_exempt
def floor_next(request: HttpRequest, slug: str) -> HttpResponse:
    volunteer = _user(request)
    if volunteer is None:
        return HttpResponse(status=403)
    now = timezone.now()
    row = rows.fetch_one(assignment.CLAIM_BY_SLUG, {
        "slug": slug, "volunteer": volunteer, "now": now, "expires": now + timedelta(seconds=settings.LEASE_SECONDS),
        "salt": random.randrange(1, assignment.SHUFFLE_MODULUS), "gold_draw": random.random(),
        "exclude": json.loads(request.body or b"{}").get("exclude", []), "newcomer": settings.GOLD_RATE_NEWCOMER,
        "decay": settings.GOLD_RATE_DECAY_TILES, "cap": assignment._gold_cap(),
        "attempts": assignment.CLAIM_ATTEMPTS, "lazy_commit": True}, prepare=True)
    if row is None or not row[OPEN]:
        return HttpResponse(status=404)
    lease, _gold, images = row[OPEN + 1:OPEN + 4]
    if lease is None:
        return HttpResponse(status=204)
    tile = row[TILE_ID]
    return JsonResponse({
        "tile": {"id": tile, "col": row[TILE_COL], "row": row[TILE_ROW], "size": row[TILE_SIZE],
                 "images": [{"layer": layer, "date": date, "url": f"/api/v1/tiles/{tile}/images/{layer}/"}
                            for layer, date in images or []]},
        "lease": {"id": lease, "seconds_left": settings.LEASE_SECONDS}, "question": row[QUESTION],
        "answers": row[ANSWERS]})


@csrf_exempt
def floor_submit(request: HttpRequest, tile_id: int) -> HttpResponse:
    volunteer = _user(request)
    if volunteer is None:
        return HttpResponse(status=403)
    body = json.loads(request.body)
    marks = body.get("marks", [])
    seconds = body.get("seconds")
    row = rows.fetch_one(classifications.VOTE_SQL, {
        "tile": tile_id, "volunteer": volunteer, "answer": body["answer"], "seconds": seconds,
        "too_fast": seconds is not None and seconds < settings.MIN_SECONDS_PER_TILE, "created_at": timezone.now(),
        "x": [m["x"] for m in marks], "y": [m["y"] for m in marks], "dates": [m.get("date") for m in marks]},
        prepare=True)
    if row is None:
        return HttpResponse(status=404)
    outcome, vote, gold, _layers = row[-4:]
    if outcome not in ("stored", "replay"):
        return JsonResponse({"error": outcome or "not visible or not valid"}, status=409)
    if outcome == "stored":
        transaction.on_commit(tile_updates.schedule_update)
    # The gold answer came with the vote; the comparison is skipped.
    return JsonResponse({"id": vote, "tile": tile_id, "gold": {"answer": row[GOLD_ANSWER]} if gold else None},
                        status=201 if outcome == "stored" else 200)
