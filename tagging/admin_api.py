"""The managers' API: project settings and status, members and their roles, gold tiles, and the dashboard.

- GET/PATCH /api/v1/projects/<slug>/settings/   question, answers, instructions, redundancy, ... (managers)
- POST      /api/v1/projects/<slug>/status/     {status}: open, pause, finish, back to draft (managers)
- GET/POST/DELETE /api/v1/projects/<slug>/members/   who has which role (managers)
- GET/PUT/DELETE  /api/v1/tiles/<id>/gold/      a tile's known answer (managers)
- GET       /api/v1/projects/<slug>/dashboard/  the figures (coordinators)

Managers means a project's managers and the platform's admins. The views only parse, check access
and answer; the work is done by the domain functions of tagging/projects.py (settings, status),
tagging/members.py (roles) and tagging/gold.py (gold tiles).
"""

from typing import Any

from django.db.models import QuerySet
from django.utils.translation import gettext as _
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import serializers, status
from rest_framework.generics import ListAPIView
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from config.errors import InvalidInput
from imagery.api import access_tile
from imagery.models import Tile
from tagging.access import access_project
from tagging.api import AnswerSerializer, ProjectOutput
from tagging.consensus_api import ReliabilityOutput
from tagging.dashboard import project_dashboard
from tagging.gold import clear_gold, set_gold
from tagging.members import members_of, remove_member, set_member_role
from tagging.models import GoldAnswer, Membership, Project
from tagging.projects import allowed_statuses, answers_locked, change_status, update_project

# --- settings and status ---------------------------------------------------------------------------------------

class SettingsInput(serializers.Serializer):
    name = serializers.CharField(max_length=200, required=False)
    question = serializers.CharField(max_length=300, required=False)
    answers = AnswerSerializer(many=True, required=False)
    instructions = serializers.CharField(required=False, allow_blank=True)
    redundancy = serializers.IntegerField(required=False)
    retire_confidence = serializers.FloatField(required=False, allow_null=True)
    scheduling = serializers.ChoiceField(choices=Project.Scheduling.choices, required=False)
    gold_rate = serializers.FloatField(required=False)
    is_public = serializers.BooleanField(required=False)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        """A field that is not a setting is refused (400, naming it), rather than ignored: a client that sends
        {"status": "paused"} must not be told 200 while the project goes on."""
        sent = self.initial_data if hasattr(self.initial_data, "keys") else {}
        unknown = sorted(set(sent.keys()) - set(self.fields))
        if unknown:
            raise serializers.ValidationError({name: [_not_a_setting(name, sorted(self.fields))] for name in unknown})
        return attrs


def _not_a_setting(name: str, settings: list[str]) -> str:
    if name == "status":
        return _("The status is not a setting: change it with POST /api/v1/projects/<slug>/status/.")
    return _("'%(field)s' is not a setting; the settings are %(settings)s.") % {
        "field": name, "settings": ", ".join(settings)}


class SettingsOutput(ProjectOutput):
    status = serializers.CharField(read_only=True, help_text="Changed with POST /api/v1/projects/<slug>/status/.")
    answers_locked = serializers.SerializerMethodField(
        help_text="True once votes or gold answers exist: answer keys, order and meaning are then fixed.")

    class Meta(ProjectOutput.Meta):
        fields = [*ProjectOutput.Meta.fields, "answers_locked"]

    def get_answers_locked(self, project: Project) -> bool:
        return answers_locked(project=project)


class ProjectSettings(APIView):
    @extend_schema(responses=SettingsOutput)
    def get(self, request: Request, slug: str) -> Response:
        return Response(SettingsOutput(access_project(request.user, slug, manage=True)).data)

    @extend_schema(request=SettingsInput, responses=SettingsOutput)
    def patch(self, request: Request, slug: str) -> Response:
        """Change any of the settings sent. Answer keys cannot change once votes exist (409 answers_in_use)."""
        project = access_project(request.user, slug, manage=True)
        data = SettingsInput(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        return Response(SettingsOutput(update_project(project=project, changes=dict(data.validated_data))).data)


class StatusInput(serializers.Serializer):
    # A plain string in the schema: the project status enum is ProjectOutput's (one enum, one component).
    status = serializers.CharField(max_length=10, help_text="draft, active, paused or finished.")


class StatusOutput(serializers.Serializer):
    project = serializers.CharField()
    status = serializers.CharField()
    allowed = serializers.ListField(child=serializers.CharField(), help_text="Where it can go from here.")


def _status_json(project: Project) -> dict[str, Any]:
    return {"project": project.slug, "status": project.status, "allowed": allowed_statuses(project)}


class ProjectStatus(APIView):
    @extend_schema(request=StatusInput, responses=StatusOutput)
    def post(self, request: Request, slug: str) -> Response:
        """Open (active), pause, finish, or take back to draft; 409 for a move that makes no sense."""
        project = access_project(request.user, slug, manage=True)
        data = StatusInput(data=request.data)
        data.is_valid(raise_exception=True)
        return Response(_status_json(change_status(project=project, new=data.validated_data["status"])))


# --- members ---------------------------------------------------------------------------------------------------

class MemberOutput(serializers.ModelSerializer):
    username = serializers.CharField(source="user.username")
    tutorial_done = serializers.SerializerMethodField()

    class Meta:
        model = Membership
        fields = ["username", "role", "joined_at", "tutorial_done"]

    def get_tutorial_done(self, membership: Membership) -> bool:
        return membership.tutorial_done_at is not None


class MemberInput(serializers.Serializer):
    username = serializers.CharField(max_length=150)
    role = serializers.ChoiceField(choices=Membership.Role.choices)


class MemberRemoveInput(serializers.Serializer):
    username = serializers.CharField(max_length=150)


@extend_schema_view(get=extend_schema(parameters=[
    OpenApiParameter("role", str, enum=[r.value for r in Membership.Role], description="Only members with this role."),
    OpenApiParameter("q", str, description="Usernames that contain this."),
]))
class MemberList(ListAPIView):
    """Members with their roles, managers first. POST sets a user's role; DELETE takes them out."""

    serializer_class = MemberOutput
    queryset = Membership.objects.none()  # for the schema; the real one depends on the project

    def get_queryset(self) -> QuerySet[Membership]:
        if getattr(self, "swagger_fake_view", False):
            return self.queryset
        project = access_project(self.request.user, self.kwargs["slug"], manage=True)
        role = self.request.query_params.get("role", "")
        if role and role not in Membership.Role.values:
            raise InvalidInput(_("role must be one of %(choices)s.") % {"choices": ", ".join(Membership.Role.values)},
                               fields={"role": ["invalid choice"]})
        return members_of(project=project, role=role, search=self.request.query_params.get("q", "").strip())

    @extend_schema(request=MemberInput, responses={200: MemberOutput, 201: MemberOutput})
    def post(self, request: Request, slug: str) -> Response:
        """Give a user (by username) a role: volunteer, coordinator or manager."""
        project = access_project(request.user, slug, manage=True)
        data = MemberInput(data=request.data)
        data.is_valid(raise_exception=True)
        membership, created = set_member_role(project=project, **data.validated_data)
        return Response(MemberOutput(membership).data,
                        status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)

    @extend_schema(request=MemberRemoveInput, responses={204: None}, parameters=[
        OpenApiParameter("username", str, description="Who to remove (or send it in the body).")])
    def delete(self, request: Request, slug: str) -> Response:
        """Take a user out of the project; their votes stay. The last manager cannot be removed."""
        project = access_project(request.user, slug, manage=True)
        data = MemberRemoveInput(data={"username": request.query_params.get("username")
                                       or (request.data or {}).get("username")})
        data.is_valid(raise_exception=True)
        remove_member(project=project, username=data.validated_data["username"])
        return Response(status=status.HTTP_204_NO_CONTENT)


# --- gold tiles ------------------------------------------------------------------------------------------------

class GoldInput(serializers.Serializer):
    answer = serializers.CharField(max_length=40)
    marks = serializers.ListField(
        child=serializers.ListField(child=serializers.FloatField(), min_length=2, max_length=2),
        required=False, default=list, help_text="[[x, y], ...] tile pixels of the destroyed buildings.")


class GoldOutput(serializers.Serializer):
    tile = serializers.IntegerField()
    status = serializers.CharField(help_text="The tile's status.")
    answer = serializers.CharField(allow_null=True)
    marks = serializers.ListField(child=serializers.ListField(child=serializers.FloatField()))


def _gold_json(tile: Tile, gold: GoldAnswer | None) -> dict[str, Any]:
    return {"tile": tile.pk, "status": tile.status, "answer": gold.answer if gold else None,
            "marks": gold.marks if gold else []}


def _managed_tile(request: Request, tile_id: int) -> Tile:
    tile = access_tile(request.user, tile_id)
    access_project(request.user, tile.grid.project.slug, manage=True)
    return tile


class GoldTile(APIView):
    @extend_schema(responses=GoldOutput)
    def get(self, request: Request, tile_id: int) -> Response:
        """The tile's known answer and buildings; answer null when it is not a gold tile."""
        tile = _managed_tile(request, tile_id)
        return Response(_gold_json(tile, GoldAnswer.objects.filter(tile=tile).first()))

    @extend_schema(request=GoldInput, responses=GoldOutput)
    def put(self, request: Request, tile_id: int) -> Response:
        """Make the tile a gold tile: a decisive answer, and a point on each destroyed building (tile pixels)."""
        tile = _managed_tile(request, tile_id)
        data = GoldInput(data=request.data)
        data.is_valid(raise_exception=True)
        gold = set_gold(tile=tile, answer=data.validated_data["answer"],
                        marks=[(x, y) for x, y in data.validated_data["marks"]])
        tile.status = Tile.Status.GOLD
        return Response(_gold_json(tile, gold))

    @extend_schema(responses=GoldOutput)
    def delete(self, request: Request, tile_id: int) -> Response:
        """The tile is no longer gold: it is open again (retired if it has all its votes)."""
        tile = clear_gold(tile=_managed_tile(request, tile_id))
        return Response(_gold_json(tile, None))


# --- dashboard -------------------------------------------------------------------------------------------------

class TileFiguresOutput(serializers.Serializer):
    total = serializers.IntegerField()
    open = serializers.IntegerField()
    retired = serializers.IntegerField()
    gold = serializers.IntegerField()
    votes_needed = serializers.IntegerField(help_text="Over open tiles: redundancy minus votes, summed.")


class VoteFiguresOutput(serializers.Serializer):
    total = serializers.IntegerField()
    counted = serializers.IntegerField(help_text="Votes not flagged too fast.")
    too_fast = serializers.IntegerField()
    volunteers = serializers.IntegerField(help_text="Volunteers who voted at least once.")
    pace_days = serializers.IntegerField()
    pace_per_day = serializers.FloatField(help_text="Counted votes on ordinary tiles per day, over pace_days days.")


class DayOutput(serializers.Serializer):
    date = serializers.DateField()
    votes = serializers.IntegerField()
    volunteers = serializers.IntegerField(help_text="Volunteers who voted that day.")


class AgreementBinOutput(serializers.Serializer):
    low = serializers.FloatField()
    high = serializers.FloatField()
    tiles = serializers.IntegerField()


class AgreementOutput(serializers.Serializer):
    bins = AgreementBinOutput(many=True)
    without_agreement = serializers.IntegerField(help_text="Tiles with a consensus but only abstentions.")


class ReliabilityExtremesOutput(serializers.Serializer):
    volunteers = serializers.IntegerField(help_text="Volunteers with an estimate.")
    top = ReliabilityOutput(many=True)
    bottom = ReliabilityOutput(many=True)


class LayerTilesOutput(serializers.Serializer):
    tiles = serializers.IntegerField()
    open = serializers.IntegerField()
    retired = serializers.IntegerField()
    gold = serializers.IntegerField()


class DashboardLayerOutput(serializers.Serializer):
    id = serializers.IntegerField()
    date = serializers.DateField()
    source = serializers.CharField()
    status = serializers.CharField()
    progress = serializers.FloatField()
    tiles_done = serializers.IntegerField()
    tiles_total = serializers.IntegerField()
    tile_count = serializers.IntegerField()
    error = serializers.CharField()
    tiles = LayerTilesOutput(help_text="This date's tiles per status.")


class LeftOutput(serializers.Serializer):
    votes_needed = serializers.IntegerField()
    days_left = serializers.IntegerField(allow_null=True, help_text="At the recent pace; null when nobody votes.")
    finish_date = serializers.DateField(allow_null=True)


class DashboardOutput(serializers.Serializer):
    project = serializers.CharField()
    status = serializers.CharField()
    redundancy = serializers.IntegerField()
    tiles = TileFiguresOutput()
    votes = VoteFiguresOutput()
    per_day = DayOutput(many=True, help_text="The last 60 days, oldest first.")
    agreement = AgreementOutput()
    reliability = ReliabilityExtremesOutput()
    layers = DashboardLayerOutput(many=True)
    left = LeftOutput()
    allowed_status = serializers.ListField(child=serializers.CharField(),
                                           help_text="The statuses the project can move to from its own.")


class Dashboard(APIView):
    @extend_schema(responses=DashboardOutput)
    def get(self, request: Request, slug: str) -> Response:
        """Progress, votes and volunteers per day, agreement, reliability, tiling, and what is left to do."""
        project = access_project(request.user, slug, coordinate=True)
        figures = {**project_dashboard(project=project), "allowed_status": allowed_statuses(project)}
        return Response(DashboardOutput(figures).data)
