"""The floor of a vote on this stack: the product's own SQL, called from the thinnest Django views.

The volunteers' API spends its Python in Django REST Framework (the request's wrapping, authentication,
throttling, rendering) and in the product's model instances. These two views do the same work in the
database and next to nothing in Python, so their votes per second bound what a rewrite of the API's Python
could reach on this server, Django and database:

- floor_next: the token's user (an in-process dict, never re-checked: no account is deleted during a
  benchmark), the project's row (remembered per process), tagging_next_tile() with the product's
  parameters, the API's next-tile JSON (its lease without the expiry);
- floor_submit: the token's user, the tile with its grid and project (one indexed query, as the API's),
  tagging_cast_vote() with the marks' ground coordinates, the consensus update scheduled after commit
  exactly as the API does (tagging.tile_updates), on a gold tile the gold answer's row, a short JSON answer.

No throttle, no input checks beyond what the database enforces, no error messages: a floor, not an API.
Its votes are real votes on the bench's project (the same functions write them), so the run's checks count
them with the others.
"""

import json
import random
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt

from tagging import assignment, rows, tile_updates

_users: dict[str, int] = {}
_projects: dict[str, tuple[Any, ...]] = {}


def _user(request: HttpRequest) -> int | None:
    key = request.META.get("HTTP_AUTHORIZATION", "")[len("Token "):]
    if key not in _users:
        row = rows.fetch_one("SELECT user_id FROM authtoken_token WHERE key = %s", [key])
        if row is None:
            return None
        _users[key] = row[0]
    return _users[key]


def _project(slug: str) -> tuple[Any, ...]:
    if slug not in _projects:
        _projects[slug] = rows.fetch_one("""SELECT id, redundancy, scheduling = 'depth_first', gold_rate, question,
                                                   answers FROM tagging_project WHERE slug = %s""", [slug])
    return _projects[slug]


@csrf_exempt
def floor_next(request: HttpRequest, slug: str) -> HttpResponse:
    volunteer = _user(request)
    if volunteer is None:
        return HttpResponse(status=403)
    project_id, redundancy, depth_first, gold_rate, question, answers = _project(slug)
    now = timezone.now()
    row = rows.fetch_one(f"""{assignment.CLAIM_CTE}
        SELECT claim.out_lease, t.id, t.col, t.row, t.size, {assignment.TILE_IMAGES_JSON}
        FROM claim JOIN imagery_tile t ON t.id = claim.out_tile""", {
        "project": project_id, "volunteer": volunteer, "now": now,
        "expires": now + timedelta(seconds=settings.LEASE_SECONDS),
        "salt": random.randrange(1, assignment.SHUFFLE_MODULUS), "gold_draw": random.random(),
        "exclude": json.loads(request.body or b"{}").get("exclude", []), "redundancy": redundancy,
        "depth_first": depth_first, "gold_rate": gold_rate, "newcomer": settings.GOLD_RATE_NEWCOMER,
        "decay": settings.GOLD_RATE_DECAY_TILES, "cap": assignment._gold_cap(),
        "attempts": assignment.CLAIM_ATTEMPTS, "lazy_commit": True}, prepare=True)
    if row is None:
        return HttpResponse(status=204)
    lease, tile, col, tile_row, size, images = row
    return JsonResponse({
        "tile": {"id": tile, "col": col, "row": tile_row, "size": size,
                 "images": [{"layer": layer, "date": date, "url": f"/api/v1/tiles/{tile}/images/{layer}/"}
                            for layer, date in images or []]},
        "lease": {"id": lease, "seconds_left": settings.LEASE_SECONDS}, "question": question, "answers": answers})


@csrf_exempt
def floor_submit(request: HttpRequest, tile_id: int) -> HttpResponse:
    volunteer = _user(request)
    if volunteer is None:
        return HttpResponse(status=403)
    body = json.loads(request.body)
    tile = rows.fetch_one("""SELECT g.project_id, p.status = 'active', p.redundancy, t.size, t.minx, t.maxx, t.maxy
                             FROM imagery_tile t JOIN imagery_grid g ON g.id = t.grid_id
                             JOIN tagging_project p ON p.id = g.project_id WHERE t.id = %s""", [tile_id], prepare=True)
    if tile is None:
        return HttpResponse(status=404)
    project, active, redundancy, size, minx, maxx, maxy = tile
    pixel = (maxx - minx) / size
    marks = body.get("marks", [])
    seconds = body.get("seconds")
    outcome, vote, gold = rows.fetch_one("""
        SELECT * FROM tagging_cast_vote(
            %(tile)s::bigint, %(volunteer)s::integer, %(project)s::bigint, TRUE, %(active)s::boolean,
            %(redundancy)s::integer, %(answer)s::text, %(seconds)s::double precision, %(too_fast)s::boolean,
            'api', %(created_at)s::timestamptz, TRUE, %(x)s::double precision[], %(y)s::double precision[],
            %(ground_x)s::double precision[], %(ground_y)s::double precision[], %(layer_id)s::bigint[])""", {
        "tile": tile_id, "volunteer": volunteer, "project": project, "active": active, "redundancy": redundancy,
        "answer": body["answer"], "seconds": seconds,
        "too_fast": seconds is not None and seconds < settings.MIN_SECONDS_PER_TILE, "created_at": timezone.now(),
        "x": [m["x"] for m in marks], "y": [m["y"] for m in marks],
        "ground_x": [minx + m["x"] * pixel for m in marks], "ground_y": [maxy - m["y"] * pixel for m in marks],
        "layer_id": [None for _ in marks]}, prepare=True)
    if outcome not in ("stored", "replay"):
        return JsonResponse({"error": outcome}, status=409)
    if outcome == "stored":
        transaction.on_commit(tile_updates.schedule_update)
    known = rows.fetch_one("SELECT answer, marks FROM tagging_goldanswer WHERE tile_id = %s", [tile_id],
                           prepare=True) if gold else None  # the gold feedback's query; the comparison is skipped
    return JsonResponse({"id": vote, "tile": tile_id, "gold": known and {"answer": known[0]}},
                        status=201 if outcome == "stored" else 200)
