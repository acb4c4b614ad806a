"""The managers' API: project settings and status, members and their roles, gold tiles, and the dashboard.

- GET/PATCH /api/v1/projects/<slug>/settings/   question, answers, instructions, redundancy, ... (managers)
- POST      /api/v1/projects/<slug>/status/     {status}: open, pause, finish, back to draft (managers)
- GET/POST/DELETE /api/v1/projects/<slug>/members/   who has which role (managers)
- GET/PUT/DELETE  /api/v1/tiles/<id>/gold/      a tile's known answer (managers)
- GET       /api/v1/projects/<slug>/dashboard/  the figures (coordinators)

Managers means a project's managers and the platform's admins. The domain functions come first
and own their transactions; the views below them only parse, check access and answer.
"""

from typing import Any

from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import Case, IntegerField, QuerySet, Value, When
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import serializers, status
from rest_framework.generics import ListAPIView
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from config.errors import Conflict, InvalidInput, NotFound
from imagery.api import access_tile
from imagery.models import Tile
from tagging.access import access_project
from tagging.api import AnswerSerializer, ProjectOutput
from tagging.classifications import MarkInput, check_classification
from tagging.consensus_api import ReliabilityOutput
from tagging.dashboard import project_dashboard
from tagging.models import Classification, GoldAnswer, Membership, Project
from tagging.projects import check_answers

# --- Domain: settings ------------------------------------------------------------------------------------------

SETTING_FIELDS = ("name", "question", "answers", "instructions", "redundancy", "retire_confidence", "scheduling",
                  "gold_rate", "is_public")


def _meaning(answers: list[dict[str, Any]]) -> list[tuple[str, bool, bool]]:
    return [(a["key"], bool(a.get("damage")), bool(a.get("abstain"))) for a in answers]


def answers_locked(*, project: Project) -> bool:
    """Once a vote or a gold answer names the answer keys, the keys and what they mean are fixed."""
    return (Classification.objects.filter(project=project).exists()
            or GoldAnswer.objects.filter(tile__grid__project=project).exists())


def _check_ranges(changes: dict[str, Any]) -> None:
    if "redundancy" in changes and not 1 <= changes["redundancy"] <= 100:
        raise InvalidInput("Redundancy must be between 1 and 100 volunteers per tile.",
                           fields={"redundancy": ["range"]})
    confidence = changes.get("retire_confidence")
    if confidence is not None and not 0.5 <= confidence <= 1:
        raise InvalidInput("The early retirement confidence must be between 0.5 and 1, or empty for none.",
                           fields={"retire_confidence": ["range"]})
    if "gold_rate" in changes and not 0 <= changes["gold_rate"] <= 1:
        raise InvalidInput("The gold rate must be between 0 and 1.", fields={"gold_rate": ["range"]})
    for name in ("name", "question"):
        if name in changes and not str(changes[name]).strip():
            raise InvalidInput(f"The {name} cannot be empty.", fields={name: ["blank"]})


def update_project(*, project: Project, changes: dict[str, Any]) -> Project:
    """Change a project's settings (SETTING_FIELDS). Raises InvalidInput, or Conflict for answer keys in use.

    Labels of answers can always change; their keys, order and meaning (damage, abstention) only
    until the first vote or gold answer. A new redundancy applies to the tiles at once: open tiles
    that have enough votes retire, and retired tiles short of votes reopen (unless the consensus
    retired them early, being sure enough).
    """
    changes = {key: value for key, value in changes.items() if key in SETTING_FIELDS}
    _check_ranges(changes)
    if "answers" in changes:
        changes["answers"] = check_answers(changes["answers"])
        if _meaning(changes["answers"]) != _meaning(project.answers) and answers_locked(project=project):
            raise Conflict("Volunteers have already answered with this project's answer keys, so the keys, their "
                           "order and what they mean (damage, can't tell) can no longer change; their labels can.",
                           fields={"answers": ["keys in use"]}, code="answers_in_use")
    with transaction.atomic():
        for key, value in changes.items():
            setattr(project, key, value)
        if changes:
            project.save(update_fields=list(changes))
        if "redundancy" in changes:
            _apply_redundancy(project)
    return project


def _apply_redundancy(project: Project) -> None:
    tiles = Tile.objects.filter(grid__project=project)
    tiles.filter(status=Tile.Status.OPEN, vote_count__gte=project.redundancy).update(status=Tile.Status.RETIRED)
    short = tiles.filter(status=Tile.Status.RETIRED, vote_count__lt=project.redundancy)
    if project.retire_confidence is not None:
        short = short.exclude(consensus__confidence__gte=project.retire_confidence)
    short.update(status=Tile.Status.OPEN)


# --- Domain: status --------------------------------------------------------------------------------------------

DRAFT, ACTIVE, PAUSED, FINISHED = (Project.Status.DRAFT, Project.Status.ACTIVE, Project.Status.PAUSED,
                                   Project.Status.FINISHED)
TRANSITIONS: dict[str, set[str]] = {
    DRAFT: {ACTIVE},
    ACTIVE: {PAUSED, FINISHED, DRAFT},
    PAUSED: {ACTIVE, FINISHED, DRAFT},
    FINISHED: {ACTIVE, PAUSED},
}


def change_status(*, project: Project, new: str) -> Project:
    """Open, pause, finish or reopen a project; the same status again changes nothing. Raises Conflict.

    Opening needs tiles to tag; going back to draft is only possible before the first vote.
    """
    if new not in Project.Status.values:
        raise InvalidInput(f"'{new}' is not a project status; use one of {', '.join(Project.Status.values)}.",
                           fields={"status": ["invalid choice"]})
    if new == project.status:
        return project
    if new not in TRANSITIONS[project.status]:
        allowed = ", ".join(sorted(TRANSITIONS[project.status]))
        raise Conflict(f"A {project.status} project cannot become {new}; it can become: {allowed}.",
                       fields={"status": ["transition"]}, code="transition")
    if new == ACTIVE and not Tile.objects.filter(grid__project=project).exists():
        raise Conflict("The project has no tiles yet: upload imagery and let it be cut into tiles before opening.",
                       fields={"status": ["no tiles"]}, code="no_tiles")
    if new == DRAFT and Classification.objects.filter(project=project).exists():
        raise Conflict("Volunteers have voted on this project: it cannot go back to draft. Pause it instead.",
                       fields={"status": ["has votes"]}, code="has_votes")
    Project.objects.filter(pk=project.pk).update(status=new)
    project.status = new
    return project


# --- Domain: members -------------------------------------------------------------------------------------------

def _user(username: str) -> Any:
    user = get_user_model().objects.filter(username=username).first()
    if user is None:
        raise NotFound(f"There is no user '{username}'.", fields={"username": ["unknown"]})
    return user


def _check_not_last_manager(membership: Membership) -> None:
    if membership.role == Membership.Role.MANAGER and not Membership.objects.filter(
            project_id=membership.project_id, role=Membership.Role.MANAGER).exclude(pk=membership.pk).exists():
        raise Conflict(f"{membership.user.username} is the project's last manager: appoint another manager first.",
                       fields={"username": ["last manager"]}, code="last_manager")


def set_member_role(*, project: Project, username: str, role: str) -> tuple[Membership, bool]:
    """Give a user a role in the project, making them a member if needed; returns (membership, created)."""
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
            raise NotFound(f"{username} is not a member of this project.", fields={"username": ["not a member"]})
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


# --- Domain: gold tiles ----------------------------------------------------------------------------------------

def set_gold(*, tile: Tile, answer: str, marks: list[tuple[float, float]]) -> GoldAnswer:
    """Make the tile a gold tile with this known answer and these buildings (tile pixels), validated like a vote.

    Its votes so far become gold votes; its consensus is re-scored after commit.
    """
    project = tile.grid.project
    check_classification(project=project, tile=tile, answer=answer, marks=[MarkInput(x, y) for x, y in marks],
                         seconds=None)
    if any(a["key"] == answer and a.get("abstain") for a in project.answers):
        raise InvalidInput(f"A gold answer must be decisive, not the abstention '{answer}'.",
                           fields={"answer": ["abstention"]})
    stored = [[float(x), float(y)] for x, y in marks]
    with transaction.atomic():
        Tile.objects.filter(pk=tile.pk).update(status=Tile.Status.GOLD)  # locks the tile's row until commit
        gold = GoldAnswer.objects.filter(tile=tile).first()
        if gold is None or gold.answer != answer or gold.marks != stored:
            # A new row rather than an update: its created_at tells the periodic recompute that gold changed.
            GoldAnswer.objects.filter(tile=tile).delete()
            gold = GoldAnswer.objects.create(tile=tile, answer=answer, marks=stored)
        Classification.objects.filter(tile=tile, is_gold=False).update(is_gold=True)
        _refresh_after_commit(tile.pk)
    return gold


def clear_gold(*, tile: Tile) -> Tile:
    """The tile is an ordinary tile again: open, or retired when it has its votes. Raises NotFound if not gold."""
    redundancy = tile.grid.project.redundancy
    with transaction.atomic():
        locked = Tile.objects.select_for_update().get(pk=tile.pk)
        deleted, _ = GoldAnswer.objects.filter(tile=locked).delete()
        if not deleted and locked.status != Tile.Status.GOLD:
            raise NotFound(f"Tile {tile.pk} is not a gold tile.")
        locked.status = Tile.Status.RETIRED if locked.vote_count >= redundancy else Tile.Status.OPEN
        locked.save(update_fields=["status"])
        Classification.objects.filter(tile=locked, is_gold=True).update(is_gold=False)
        _refresh_after_commit(tile.pk)
    return locked


def _refresh_after_commit(tile_id: int) -> None:
    from workers.tagging import refresh_tile_task

    transaction.on_commit(lambda: refresh_tile_task.delay(tile_id))


# --- API: settings and status ----------------------------------------------------------------------------------

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
    return {"project": project.slug, "status": project.status, "allowed": sorted(TRANSITIONS[project.status])}


class ProjectStatus(APIView):
    @extend_schema(request=StatusInput, responses=StatusOutput)
    def post(self, request: Request, slug: str) -> Response:
        """Open (active), pause, finish, or take back to draft; 409 for a move that makes no sense."""
        project = access_project(request.user, slug, manage=True)
        data = StatusInput(data=request.data)
        data.is_valid(raise_exception=True)
        return Response(_status_json(change_status(project=project, new=data.validated_data["status"])))


# --- API: members ----------------------------------------------------------------------------------------------

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
            raise InvalidInput(f"role must be one of {', '.join(Membership.Role.values)}.",
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


# --- API: gold tiles -------------------------------------------------------------------------------------------

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


# --- API: dashboard --------------------------------------------------------------------------------------------

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
        figures = {**project_dashboard(project=project), "allowed_status": sorted(TRANSITIONS[project.status])}
        return Response(DashboardOutput(figures).data)
