"""The projects API: /api/v1/projects/."""

from typing import Any

from django.db.models import QuerySet
from django.utils.translation import gettext as _
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.authtoken.views import ObtainAuthToken
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.throttling import ScopedRateThrottle
from rest_framework.views import APIView

from config.errors import NotAllowed
from tagging.access import access_project, is_platform_admin
from tagging.models import Project
from tagging.projects import create_project


class AnswerSerializer(serializers.Serializer):
    key = serializers.CharField(max_length=40)
    label = serializers.CharField(max_length=80, required=False)
    damage = serializers.BooleanField(default=False)
    abstain = serializers.BooleanField(default=False)


class ProjectInput(serializers.Serializer):
    slug = serializers.SlugField(max_length=80)
    name = serializers.CharField(max_length=200)
    instructions = serializers.CharField(required=False, allow_blank=True, default="")
    question = serializers.CharField(max_length=300, required=False)
    answers = AnswerSerializer(many=True, required=False)
    tile_size = serializers.IntegerField(default=512)
    overlap = serializers.IntegerField(default=64)
    redundancy = serializers.IntegerField(default=5)
    is_public = serializers.BooleanField(default=True)


class ProjectOutput(serializers.ModelSerializer):
    class Meta:
        model = Project
        fields = ["slug", "name", "instructions", "question", "answers", "redundancy", "retire_confidence",
                  "status", "scheduling", "gold_rate", "is_public", "tile_size", "overlap", "created_at"]


def visible_projects(user: Any) -> QuerySet[Project]:
    if is_platform_admin(user):
        return Project.objects.all()
    return (Project.objects.filter(is_public=True) | Project.objects.filter(memberships__user=user)).distinct()


class ProjectList(APIView):
    @extend_schema(responses=ProjectOutput(many=True))
    def get(self, request: Request) -> Response:
        return Response(ProjectOutput(visible_projects(request.user), many=True).data)

    @extend_schema(request=ProjectInput, responses={201: ProjectOutput})
    def post(self, request: Request) -> Response:
        if not is_platform_admin(request.user):
            raise NotAllowed(_("Only admins create projects."))
        data = ProjectInput(data=request.data)
        data.is_valid(raise_exception=True)
        project = create_project(user=request.user, **data.validated_data)
        return Response(ProjectOutput(project).data, status=status.HTTP_201_CREATED)


class ProjectDetail(APIView):
    @extend_schema(responses=ProjectOutput)
    def get(self, request: Request, slug: str) -> Response:
        return Response(ProjectOutput(access_project(request.user, slug)).data)



class TokenView(ObtainAuthToken):
    """POST username and password, get {"token": ...} for the Authorization: Token header."""

    throttle_classes = [ScopedRateThrottle]
    throttle_scope = "token"
