from typing import Any

from django.apps import AppConfig
from django.conf import settings
from django.db.models.signals import post_delete, post_save


class TaggingConfig(AppConfig):
    name = "tagging"
    verbose_name = "Tagging"

    def ready(self) -> None:
        from rest_framework.authtoken.models import Token

        # The API remembers a token's user for a while (tagging.tokens): a change made here applies at once.
        post_save.connect(_forget_saved_user, sender=settings.AUTH_USER_MODEL, dispatch_uid="tokens-user-saved")
        post_delete.connect(_forget_deleted_token, sender=Token, dispatch_uid="tokens-token-deleted")


def _forget_saved_user(sender: Any, instance: Any, created: bool = False, raw: bool = False, **kwargs: Any) -> None:
    if created or raw:
        return  # a new user has no token yet; fixtures are loaded by a process that serves nobody
    from tagging import tokens

    tokens.forget_user(instance.pk)


def _forget_deleted_token(sender: Any, instance: Any, **kwargs: Any) -> None:
    from tagging import tokens

    tokens.forget_token(instance.key)
