"""Helpers shared by the API tests: a client signed in as someone (or nobody), a member of a project."""

from typing import Any

from rest_framework.test import APIClient

from tagging.models import Membership, Project


def client_for(user: Any) -> APIClient:
    """An API client authenticated as `user`; anonymous when `user` is None."""
    api = APIClient()
    if user is not None:
        api.force_authenticate(user)
    return api


def member(django_user_model: Any, project: Project, role: str, name: str) -> Any:
    """A new user who is a member of `project` with `role`."""
    user = django_user_model.objects.create_user(name)
    Membership.objects.create(project=project, user=user, role=role)
    return user
