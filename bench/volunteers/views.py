"""The two ceilings the volunteers' API is compared with, served by the same gunicorn.

- json_ceiling: the cheapest Django answer, a constant JSON body through the whole
  middleware stack; what the server, Django and the client cost with no work at all.
- bare_vote: the least a vote can cost: parse a JSON body, one indexed SELECT of the tile
  by primary key, one INSERT of (volunteer, tile, answer) under a unique (volunteer, tile)
  index, no authentication, no throttling, no lease, no task. It writes to VOTE_TABLE, a
  table the benchmark creates with raw SQL (create_vote_table), not to the product's
  Classification: its rows must never mix with the votes the correctness checks count.
"""

import json

from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from imagery.models import Tile

VOTE_TABLE = "bench_volunteers_bare_vote"


def create_vote_table() -> None:
    """(Re)create the bare vote view's table: the shape of a vote with Classification's unique pair."""
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE IF EXISTS {VOTE_TABLE}")
        cursor.execute(f"""CREATE TABLE {VOTE_TABLE} (
            id bigserial PRIMARY KEY, volunteer integer NOT NULL, tile bigint NOT NULL,
            answer varchar(40) NOT NULL, created_at timestamptz NOT NULL DEFAULT now(),
            UNIQUE (volunteer, tile))""")


def count_votes() -> int:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT count(*) FROM {VOTE_TABLE}")
        return int(cursor.fetchone()[0])


@require_GET
def json_ceiling(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"ok": True})


@csrf_exempt
@require_POST
def bare_vote(request: HttpRequest) -> JsonResponse:
    """One indexed SELECT and one INSERT (autocommit: one commit). 201 with the row's id, 404 for no tile."""
    body = json.loads(request.body)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT id, status, vote_count FROM {Tile._meta.db_table} WHERE id = %s", [body["tile"]])
        tile = cursor.fetchone()
        if tile is None:
            return JsonResponse({"error": "no such tile"}, status=404)
        cursor.execute(f"INSERT INTO {VOTE_TABLE} (volunteer, tile, answer) VALUES (%s, %s, %s) RETURNING id",
                       [body["volunteer"], tile[0], body["answer"]])
        vote_id = cursor.fetchone()[0]
    return JsonResponse({"id": vote_id, "tile": tile[0]}, status=201)
