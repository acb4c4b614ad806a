"""The volunteers' API beyond tagging: tutorial, skip and bad-image reports, progress, invitations, leaving."""

from typing import Any

from django.contrib.auth import authenticate
from django.db import IntegrityError, transaction
from django.utils.translation import gettext as _
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from config.errors import InvalidInput, NotAllowed
from imagery.api import access_tile
from tagging.access import access_project, can_manage_project
from tagging.accounts import delete_account
from tagging.assignment import release_lease
from tagging.classifications import MarkInput
from tagging.models import Membership, Project, TileReport
from tagging.tasks_api import MarkSerializer
from tagging.volunteers import (
    accept_invitation,
    check_practice,
    create_invitation,
    example_tiles,
    finish_tutorial,
    practice_tiles,
    volunteer_progress,
)


def _images(tile: Any) -> list[dict[str, Any]]:
    images = sorted(tile.images.select_related("layer"), key=lambda image: image.layer.date)
    return [{"layer": i.layer_id, "date": i.layer.date, "url": f"/api/v1/tiles/{tile.pk}/images/{i.layer_id}/"}
            for i in images]


class TutorialView(APIView):
    @extend_schema(request=None, responses=dict)
    def get(self, request: Request, slug: str) -> Response:
        """The project's instructions, question, answers and practice tiles (gold tiles; their answers not shown)."""
        project = access_project(request.user, slug)
        membership = Membership.objects.filter(project=project, user=request.user).first()
        labels = {a["key"]: a["label"] for a in project.answers}
        practice = practice_tiles(project=project)
        return Response({
            "instructions": project.instructions, "question": project.question,
            "answers": [{k: a[k] for k in ("key", "label", "damage", "abstain")} for a in project.answers],
            "done": bool(membership and membership.tutorial_done_at),
            "practice": [{"id": t.pk, "size": t.size, "images": _images(t)} for t in practice],
            "examples": [{"id": g.tile_id, "size": g.tile.size, "images": _images(g.tile), "answer": g.answer,
                          "answer_label": labels.get(g.answer, g.answer), "marks": g.marks}
                         for g in example_tiles(project=project, practice=practice)],
        })


class PracticeInput(serializers.Serializer):
    answer = serializers.CharField(max_length=40)
    marks = MarkSerializer(many=True, required=False, default=list)


class PracticeCheck(APIView):
    @extend_schema(request=PracticeInput, responses=dict)
    def post(self, request: Request, slug: str, tile_id: int) -> Response:
        """Feedback on a practice tile: right or not, buildings found, missed and wrongly marked. No vote is stored."""
        project = access_project(request.user, slug)
        data = PracticeInput(data=request.data)
        data.is_valid(raise_exception=True)
        marks = [MarkInput(m["x"], m["y"]) for m in data.validated_data["marks"]]
        return Response(check_practice(volunteer=request.user, project=project, tile_id=tile_id,
                                       answer=data.validated_data["answer"], marks=marks))


class TutorialDone(APIView):
    @extend_schema(request=None, responses=dict)
    def post(self, request: Request, slug: str) -> Response:
        project = access_project(request.user, slug)
        membership = finish_tutorial(volunteer=request.user, project=project)
        return Response({"done": True, "tutorial_done_at": membership.tutorial_done_at})


class SkipTile(APIView):
    @extend_schema(request=None, responses=dict)
    def post(self, request: Request, tile_id: int) -> Response:
        """Give the tile back without answering; it is not offered to this volunteer again."""
        access_tile(request.user, tile_id)
        return Response({"released": release_lease(volunteer=request.user, tile_id=tile_id)})


class ReportInput(serializers.Serializer):
    reason = serializers.ChoiceField(choices=TileReport.Reason.choices, default=TileReport.Reason.OTHER)
    note = serializers.CharField(max_length=500, required=False, allow_blank=True, default="")


class ReportTile(APIView):
    @extend_schema(request=ReportInput, responses={201: dict, 200: dict})
    def post(self, request: Request, tile_id: int) -> Response:
        """Report a bad image (clouds, blur, blank, dates that do not line up); the tile is skipped."""
        tile = access_tile(request.user, tile_id)
        data = ReportInput(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            with transaction.atomic():
                report, created = TileReport.objects.get_or_create(
                    tile=tile, volunteer=request.user, defaults=data.validated_data)
        except IntegrityError:  # the same report sent twice at once
            report, created = TileReport.objects.get(tile=tile, volunteer=request.user), False
        release_lease(volunteer=request.user, tile_id=tile_id)
        return Response({"id": report.pk, "reason": report.reason, "note": report.note},
                        status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)


class MyProgress(APIView):
    @extend_schema(request=None, responses=dict)
    def get(self, request: Request, slug: str) -> Response:
        """How am I doing: tiles today and in total, agreement with the crowd, gold score, the project's progress."""
        project = access_project(request.user, slug)
        return Response(volunteer_progress(volunteer=request.user, project=project))


class InvitationInput(serializers.Serializer):
    role = serializers.ChoiceField(choices=Membership.Role.choices, default=Membership.Role.VOLUNTEER)
    note = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
    days = serializers.IntegerField(min_value=1, max_value=365, required=False)


class InvitationList(APIView):
    @extend_schema(request=InvitationInput, responses={201: dict})
    def post(self, request: Request, slug: str) -> Response:
        """Make an invitation link to the project (a private project is open to invited volunteers only).

        Managers and admins invite any role; coordinators invite volunteers.
        """
        project = access_project(request.user, slug)
        data = InvitationInput(data=request.data)
        data.is_valid(raise_exception=True)
        role = data.validated_data["role"]
        if not _may_invite(request.user, project, role):
            refused = {Membership.Role.MANAGER: _("You may not invite managers to '%(project)s'."),
                       Membership.Role.COORDINATOR: _("You may not invite coordinators to '%(project)s'.")}
            message = refused.get(role, _("You may not invite volunteers to '%(project)s'."))
            raise NotAllowed(message % {"project": slug})
        invitation = create_invitation(project=project, invited_by=request.user, role=role,
                                       note=data.validated_data["note"], days=data.validated_data.get("days"))
        return Response({"token": invitation.token, "role": invitation.role, "expires_at": invitation.expires_at,
                         "url": request.build_absolute_uri(f"/invite/{invitation.token}/")},
                        status=status.HTTP_201_CREATED)


def _may_invite(user: Any, project: Project, role: str) -> bool:
    if can_manage_project(user, project):
        return True
    return role == Membership.Role.VOLUNTEER and Membership.objects.filter(
        project=project, user=user, role=Membership.Role.COORDINATOR).exists()


class InvitationAccept(APIView):
    @extend_schema(request=None, responses=dict)
    def post(self, request: Request, token: str) -> Response:
        membership = accept_invitation(token=token, volunteer=request.user)
        return Response({"project": membership.project.slug, "role": membership.role})


class DeleteAccountInput(serializers.Serializer):
    password = serializers.CharField()


class AccountView(APIView):
    @extend_schema(request=None, responses=dict)
    def get(self, request: Request) -> Response:
        """What the platform holds about you: a pseudonym, an e-mail address for password resets, your roles."""
        user = request.user
        return Response({"username": user.username, "email": user.email,
                         "projects": [{"project": m.project.slug, "role": m.role}
                                      for m in user.memberships.select_related("project")],
                         "classifications": user.classifications.count()})

    @extend_schema(request=DeleteAccountInput, responses={204: None})
    def delete(self, request: Request) -> Response:
        """Delete your account: your personal data goes; your classifications stay, anonymised."""
        data = DeleteAccountInput(data=request.data)
        data.is_valid(raise_exception=True)
        if authenticate(request._request, username=request.user.username,
                        password=data.validated_data["password"]) is None:
            raise InvalidInput(_("That is not your password."), fields={"password": ["wrong password"]})
        delete_account(user=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)

