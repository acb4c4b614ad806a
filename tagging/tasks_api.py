"""The volunteers' API: the next tile, lease renewal, classifications."""

import datetime
import json
import math
import re
from collections.abc import Callable
from typing import Any

from django.http import HttpResponse
from django.utils import timezone
from django.utils.translation import gettext as _
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import APIException
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.throttling import ScopedRateThrottle
from rest_framework.views import APIView

from config.errors import NotFound
from imagery.models import Tile
from tagging.access import access_project, access_tile_to_answer
from tagging.assignment import next_tile_for, next_tile_in_project, renew_lease
from tagging.classifications import MarkInput, gold_feedback, record_classification, vote_in_one_statement
from tagging.models import Assignment, Classification


class TaskImageOutput(serializers.Serializer):
    layer = serializers.IntegerField()
    date = serializers.DateField()
    url = serializers.CharField()


class TaskTileOutput(serializers.Serializer):
    id = serializers.IntegerField()
    col = serializers.IntegerField()
    row = serializers.IntegerField()
    size = serializers.IntegerField()
    images = TaskImageOutput(many=True)


class LeaseOutput(serializers.Serializer):
    id = serializers.IntegerField()
    expires_at = serializers.DateTimeField()
    seconds_left = serializers.IntegerField()


class TaskOutput(serializers.Serializer):
    tile = TaskTileOutput()
    lease = LeaseOutput()
    question = serializers.CharField()
    answers = serializers.ListField(child=serializers.DictField())


def lease_json(assignment: Assignment) -> dict[str, Any]:
    left = max(0, int((assignment.expires_at - timezone.now()).total_seconds()))
    return {"id": assignment.pk, "expires_at": assignment.expires_at, "seconds_left": left}


def task_json(assignment: Assignment) -> dict[str, Any]:
    tile: Tile = assignment.tile
    # Dated images, oldest first (next_tile_for loads them); never whether the tile is gold, nor anyone's answers.
    images = assignment.images
    project = assignment.project
    return {
        "tile": {"id": tile.pk, "col": tile.col, "row": tile.row, "size": tile.size,
                 "images": [{"layer": layer_id, "date": str(date), "url": f"/api/v1/tiles/{tile.pk}/images/{layer_id}/"}
                            for layer_id, date in images]},
        "lease": lease_json(assignment),
        "question": project.question,
        "answers": [{"key": a["key"], "label": a["label"], "damage": a["damage"], "abstain": a["abstain"]}
                    for a in project.answers],
    }


class NextTaskInput(serializers.Serializer):
    exclude = serializers.ListField(child=serializers.IntegerField(), required=False, default=list, max_length=10,
                                    help_text="Tiles still on screen: do not hand these back (prefetching).")


def validated(serializer: type[serializers.Serializer], data: Any,
              plain: Callable[[Any], dict[str, Any] | None]) -> dict[str, Any]:
    """The serializer's validated data for `data`: from `plain` when it can read the input, else from the
    serializer itself, which judges it and words the error.

    The two requests every vote makes take well-formed JSON almost always. DRF's field machinery (a deep
    copy of every declared field per request, then a call per field and mark) took about a tenth of their
    Python time in a profile of both; `plain` reads exactly the common forms, and gives up (None) on
    anything else.
    tests/tagging/test_plain_input.py holds the two to the same results.
    """
    result = plain(data)
    if result is not None:
        return result
    checked = serializer(data=data)
    checked.is_valid(raise_exception=True)
    return dict(checked.validated_data)


def _number(value: Any) -> float | None:
    """A JSON number as FloatField reads it, or None for anything else (strings, booleans, infinities)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def plain_next_task(data: Any) -> dict[str, Any] | None:
    """NextTaskInput's validated data for a body of at most 10 integer tile ids in `exclude`, or None."""
    exclude = data.get("exclude", []) if isinstance(data, dict) else None
    if not isinstance(exclude, list) or len(exclude) > 10 or not all(
            type(tile_id) is int for tile_id in exclude):
        return None
    return {"exclude": exclude}


ANSWER_KEY = re.compile(r"[A-Za-z0-9_-]{1,40}")
ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}", re.ASCII)


def plain_classification(data: Any) -> dict[str, Any] | None:
    """ClassificationInput's validated data for a body of plain JSON values, or None."""
    if not isinstance(data, dict):
        return None
    answer, marks = data.get("answer"), data.get("marks", [])
    if not isinstance(answer, str) or not ANSWER_KEY.fullmatch(answer) or not isinstance(marks, list):
        return None
    result: dict[str, Any] = {"answer": answer, "marks": []}
    for mark in marks:
        if not isinstance(mark, dict):
            return None
        x, y = _number(mark.get("x")), _number(mark.get("y"))
        if x is None or y is None:
            return None
        read = {"x": x, "y": y}
        if "date" in mark:
            date = mark["date"]
            if date is not None:
                if not isinstance(date, str) or not ISO_DATE.fullmatch(date):
                    return None
                try:
                    date = datetime.date.fromisoformat(date)
                except ValueError:
                    return None
            read["date"] = date
        result["marks"].append(read)
    if "seconds" in data:
        seconds = data["seconds"]
        if seconds is not None and (seconds := _number(seconds)) is None:
            return None
        result["seconds"] = seconds
    return result


class JsonOnlyView(APIView):
    """A view of the two requests every vote makes: JSON in, JSON out, whatever the Accept header says.

    DRF negotiates the renderer on every request, even with one to choose from (parsing Accept, matching
    media types): about 4% of a vote's Python time in a profile. An app that asks for anything but JSON
    gets JSON rather than 406. The body is read with json.loads when it is JSON, and the answer rendered
    straight into an HttpResponse (json_body, json_response): a vote took about 7% less Python time so
    (median of 5 A/B runs in process, 5.91 to 5.49 ms), DRF's request parsing and template response having
    been about 12% of its py-spy samples. Errors still go through DRF's exception handling, and input that
    json.loads refuses through DRF's parser, which words the error.
    """

    renderer_classes = [JSONRenderer]

    def perform_content_negotiation(self, request: Request, force: bool = False) -> tuple[JSONRenderer, str]:
        return JSON_RENDERER, JSON_RENDERER.media_type


JSON_RENDERER = JSONRenderer()  # holds no state: one serves every request


def _no_constants(name: str) -> float:
    raise ValueError(f"{name} is not JSON")  # NaN and Infinity: DRF's strict parser refuses them too


def json_body(request: Request) -> Any:
    """request.data for a JSON body (an empty one is {}); anything else, or JSON that does not parse, goes
    to DRF's parsers, which read forms and word a parse error (400)."""
    django_request = request._request
    if django_request.content_type == "application/json":
        body = django_request.body
        if not body:
            return {}
        try:
            return json.loads(body, parse_constant=_no_constants)
        except ValueError:
            pass
    return request.data


def json_body_after(request: Request, access: Callable[[], object]) -> Any:
    """json_body, for a view that reads the body before it checks access (in the statement that does the work):
    when the body cannot be read, `access` runs first, so that what the user may not see is not found (404)
    whatever the body, as when the check came first."""
    try:
        return json_body(request)
    except APIException:
        access()
        raise


def json_response(data: Any, status_code: int = status.HTTP_200_OK) -> HttpResponse:
    """What Response(data) renders to in a JsonOnlyView (the same JSONRenderer, the same bytes)."""
    return HttpResponse(JSON_RENDERER.render(data), content_type=JSON_RENDERER.media_type, status=status_code)


class NextTask(JsonOnlyView):
    @extend_schema(request=NextTaskInput, responses={200: TaskOutput, 204: OpenApiResponse(
        description="Nothing left for this volunteer; the X-Message header says so.")})
    def post(self, request: Request, slug: str) -> HttpResponse:
        """Lease the next tile to tag (a held, unanswered lease is renewed and returned instead).

        The tagging page fetches the next tile while the current one is on screen, passing the
        current tile in `exclude`, so the volunteer never waits between tiles.
        """
        body = json_body_after(request, lambda: access_project(request.user, slug))
        plain = plain_next_task(body)
        # The common case in one round trip (an active project open to the volunteer, a plain body); anything else,
        # errors included, the long way.
        claimed = next_tile_in_project(volunteer=request.user, slug=slug, exclude=plain["exclude"]) if plain else None
        if claimed is not None:
            assignment = claimed[1]
        else:
            project = access_project(request.user, slug)
            data = validated(NextTaskInput, body if isinstance(body, dict) else {}, plain_next_task)
            assignment = next_tile_for(volunteer=request.user, project=project, exclude=data["exclude"])
        if assignment is None:
            nothing = HttpResponse(status=status.HTTP_204_NO_CONTENT, headers={
                "X-Message": "You have seen every tile of this project that still needs votes. Thank you!"})
            del nothing["Content-Type"]  # no body, no type (as DRF's Response)
            return nothing
        return json_response(task_json(assignment))


class RenewLease(APIView):
    @extend_schema(request=None, responses=LeaseOutput)
    def post(self, request: Request, lease_id: int) -> Response:
        """Keep the lease while the volunteer is working on the tile."""
        assignment = Assignment.objects.filter(pk=lease_id, volunteer=request.user).first()
        if assignment is None:
            raise NotFound(_("You hold no lease %(lease)s.") % {"lease": lease_id})
        return Response(lease_json(renew_lease(assignment=assignment)))


class MarkSerializer(serializers.Serializer):
    x = serializers.FloatField()
    y = serializers.FloatField()
    date = serializers.DateField(required=False, allow_null=True)


class ClassificationInput(serializers.Serializer):
    answer = serializers.CharField(max_length=40)
    marks = MarkSerializer(many=True, required=False, default=list)
    seconds = serializers.FloatField(required=False, allow_null=True)


class MarkOutput(serializers.Serializer):
    x = serializers.FloatField()
    y = serializers.FloatField()
    ground_x = serializers.FloatField()
    ground_y = serializers.FloatField()
    date = serializers.DateField(allow_null=True)


class ClassificationOutput(serializers.Serializer):
    id = serializers.IntegerField()
    tile = serializers.IntegerField()
    answer = serializers.CharField()
    marks = MarkOutput(many=True)
    seconds = serializers.FloatField(allow_null=True)
    too_fast = serializers.BooleanField()
    created_at = serializers.DateTimeField()
    gold = serializers.DictField(allow_null=True, help_text="On a gold tile: right or not, buildings found, missed "
                                                            "and wrongly marked.")


def classification_json(classification: Classification) -> dict[str, Any]:
    """ClassificationOutput of a classification from record_classification (its marks come with it)."""
    marks = classification.mark_rows
    return {
        "id": classification.pk, "tile": classification.tile_id, "answer": classification.answer,
        "marks": [{"x": m.x, "y": m.y, "ground_x": m.ground_x, "ground_y": m.ground_y,
                   "date": m.layer.date if m.layer else None} for m in marks],
        "seconds": classification.seconds, "too_fast": classification.too_fast,
        "created_at": classification.created_at,
        "gold": gold_feedback(classification=classification, marks=[(m.x, m.y) for m in marks])
        if classification.is_gold else None,
    }


class CountingRateThrottle(ScopedRateThrottle):
    """DRF's scoped rate limit (REST_FRAMEWORK's THROTTLE_RATES) as a counter in the shared cache.

    A user's window starts with their first request and lasts the rate's period; the counter is
    one increment per request. DRF's own throttle reads, unpickles, pickles and writes the list
    of the user's request times: two cache round trips on every vote (bench.volunteers).
    """

    def allow_request(self, request: Request, view: APIView) -> bool:
        self.scope = getattr(view, self.scope_attr, None)
        if not self.scope:
            return True
        self.rate = self.get_rate()
        self.num_requests, self.duration = self.parse_rate(self.rate)
        key = self.get_cache_key(request, view)
        return key is None or self.count(key) <= self.num_requests

    def count(self, key: str) -> int:
        """This request's number in the key's window; the window starts anew once its counter has expired."""
        if hasattr(self.cache, "count_in_window"):  # one round trip (config.cache, on Redis)
            return self.cache.count_in_window(key, self.duration)
        try:
            count = self.cache.incr(key)
        except ValueError:  # no window open
            if self.cache.add(key, 1, self.duration):
                return 1
            count = self.cache.incr(key)  # another request opened it meanwhile
        if count == 1:
            # The counter expired between the cache's check and its increment (Redis), which made it anew
            # without an expiry: give it one, or the user would stay limited for good.
            self.cache.touch(key, self.duration)
        return count

    def wait(self) -> float:
        return float(self.duration)  # at most; the window's start is not kept


class ClassificationCreate(JsonOnlyView):
    throttle_classes = [CountingRateThrottle]
    throttle_scope = "submit"

    @extend_schema(request=ClassificationInput, responses={201: ClassificationOutput, 200: ClassificationOutput})
    def post(self, request: Request, tile_id: int) -> HttpResponse:
        """Answer a tile. A replay of the same volunteer's answer returns the stored one with 200."""
        body = json_body_after(request, lambda: access_tile_to_answer(request.user, tile_id))
        plain = plain_classification(body)
        # The common case in one round trip (a project open to the voter, valid input); anything else, errors and
        # replays included, the long way.
        done = vote_in_one_statement(volunteer=request.user, tile_id=tile_id, answer=plain["answer"],
                                     marks=mark_inputs(plain["marks"]), seconds=plain.get("seconds")) if plain else None
        if done is None:
            tile = access_tile_to_answer(request.user, tile_id)
            data = validated(ClassificationInput, body, plain_classification)
            done = record_classification(volunteer=request.user, tile=tile, answer=data["answer"],
                                         marks=mark_inputs(data["marks"]), seconds=data.get("seconds"))
        classification, created = done
        return json_response(classification_json(classification),
                             status.HTTP_201_CREATED if created else status.HTTP_200_OK)


def mark_inputs(marks: list[dict[str, Any]]) -> list[MarkInput]:
    """The validated marks as record_classification takes them (dates as ISO strings)."""
    return [MarkInput(m["x"], m["y"], str(m["date"]) if m.get("date") else None) for m in marks]
