"""The volunteers' API: the next tile, lease renewal, classifications."""

from typing import Any

from django.utils import timezone
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.throttling import ScopedRateThrottle
from rest_framework.views import APIView

from config.errors import NotFound
from imagery.api import access_tile
from imagery.models import Tile
from tagging.access import access_project
from tagging.assignment import next_tile_for, renew_lease
from tagging.classifications import MarkInput, gold_feedback, record_classification
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
    # Dated images, oldest first; never whether the tile is gold, nor anyone's answers.
    images = sorted(tile.images.select_related("layer"), key=lambda image: image.layer.date)
    project = assignment.project
    return {
        "tile": {"id": tile.pk, "col": tile.col, "row": tile.row, "size": tile.size,
                 "images": [{"layer": i.layer_id, "date": i.layer.date,
                             "url": f"/api/v1/tiles/{tile.pk}/images/{i.layer_id}/"} for i in images]},
        "lease": lease_json(assignment),
        "question": project.question,
        "answers": [{"key": a["key"], "label": a["label"], "damage": a["damage"], "abstain": a["abstain"]}
                    for a in project.answers],
    }


class NextTaskInput(serializers.Serializer):
    exclude = serializers.ListField(child=serializers.IntegerField(), required=False, default=list, max_length=10,
                                    help_text="Tiles still on screen: do not hand these back (prefetching).")


class NextTask(APIView):
    @extend_schema(request=NextTaskInput, responses={200: TaskOutput, 204: OpenApiResponse(
        description="Nothing left for this volunteer; the X-Message header says so.")})
    def post(self, request: Request, slug: str) -> Response:
        """Lease the next tile to tag (a held, unanswered lease is renewed and returned instead).

        The tagging page fetches the next tile while the current one is on screen, passing the
        current tile in `exclude`, so the volunteer never waits between tiles.
        """
        project = access_project(request.user, slug)
        data = NextTaskInput(data=request.data if isinstance(request.data, dict) else {})
        data.is_valid(raise_exception=True)
        assignment = next_tile_for(volunteer=request.user, project=project, exclude=data.validated_data["exclude"])
        if assignment is None:
            return Response(status=status.HTTP_204_NO_CONTENT, headers={
                "X-Message": "You have seen every tile of this project that still needs votes. Thank you!"})
        return Response(task_json(assignment))


class RenewLease(APIView):
    @extend_schema(request=None, responses=LeaseOutput)
    def post(self, request: Request, lease_id: int) -> Response:
        """Keep the lease while the volunteer is working on the tile."""
        assignment = Assignment.objects.filter(pk=lease_id, volunteer=request.user).first()
        if assignment is None:
            raise NotFound(f"You hold no lease {lease_id}.")
        return Response(lease_json(renew_lease(assignment=assignment)))


class MarkSerializer(serializers.Serializer):
    x = serializers.FloatField()
    y = serializers.FloatField()
    date = serializers.DateField(required=False, allow_null=True)


class ClassificationInput(serializers.Serializer):
    answer = serializers.CharField(max_length=40)
    marks = MarkSerializer(many=True, required=False, default=list)
    seconds = serializers.FloatField(required=False, allow_null=True)


class ClassificationOutput(serializers.ModelSerializer):
    marks = serializers.SerializerMethodField()
    gold = serializers.SerializerMethodField()

    class Meta:
        model = Classification
        fields = ["id", "tile", "answer", "marks", "seconds", "too_fast", "created_at", "gold"]

    def get_marks(self, obj: Classification) -> list[dict[str, Any]]:
        return [{"x": m.x, "y": m.y, "ground_x": m.ground_x, "ground_y": m.ground_y,
                 "date": m.layer.date if m.layer else None} for m in obj.marks.select_related("layer")]

    def get_gold(self, obj: Classification) -> dict[str, Any] | None:
        return gold_feedback(classification=obj) if obj.is_gold else None


class ClassificationCreate(APIView):
    throttle_classes = [ScopedRateThrottle]
    throttle_scope = "submit"

    @extend_schema(request=ClassificationInput, responses={201: ClassificationOutput, 200: ClassificationOutput})
    def post(self, request: Request, tile_id: int) -> Response:
        """Answer a tile. A replay of the same volunteer's answer returns the stored one with 200."""
        tile = access_tile(request.user, tile_id)
        data = ClassificationInput(data=request.data)
        data.is_valid(raise_exception=True)
        marks = [MarkInput(m["x"], m["y"], str(m["date"]) if m.get("date") else None)
                 for m in data.validated_data["marks"]]
        classification, created = record_classification(
            volunteer=request.user, tile=tile, answer=data.validated_data["answer"], marks=marks,
            seconds=data.validated_data.get("seconds"))
        return Response(ClassificationOutput(classification).data,
                        status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)
