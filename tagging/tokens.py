"""Who is asking: the API's token authentication (REST_FRAMEWORK's DEFAULT_AUTHENTICATION_CLASSES).

DRF imports it while it reads its settings, so it imports nothing of the platform's but tagging.rows.

Every request of a volunteer's app is authenticated, two per vote. Each server process remembers a token's
user row for TOKEN_CACHE_SECONDS (30 s by default; 0: never) in its own memory (the "local" cache), so that
most requests need no query for it. A change made through this process (the user saved, a token deleted:
tagging.apps calls forget_user) applies at once; one made by another process, or by SQL, within
TOKEN_CACHE_SECONDS. So a deleted or deactivated account may go on answering tiles that long through another
server process; its votes then count under its pseudonym, as if cast just before.
"""

from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.core.cache import caches
from django.utils.translation import gettext as _
from rest_framework import authentication, exceptions
from rest_framework.authtoken.models import Token

from tagging import rows


class TokenAuthentication(authentication.TokenAuthentication):
    """DRF's token authentication (the Authorization: Token header), with the user loaded by one plain query,
    and remembered for a while (see the module's docstring)."""

    def authenticate_credentials(self, key: str) -> tuple[AbstractBaseUser, Token]:
        user = rows.instance(get_user_model(), iter(_user_row(key)))
        if not user.is_active:
            raise exceptions.AuthenticationFailed(_("User inactive or deleted."))
        return user, Token(key=key, user=user)


def _cache_key(key: str) -> str:
    return f"token:{key}"


def _user_row(key: str) -> tuple[Any, ...]:
    remembered = caches["local"].get(_cache_key(key)) if settings.TOKEN_CACHE_SECONDS > 0 else None
    if remembered is not None:
        return remembered
    users = get_user_model()
    row = rows.fetch_one(f"SELECT {rows.columns(users, 'u')} FROM {users._meta.db_table} u "
                         f"JOIN {Token._meta.db_table} t ON t.user_id = u.{users._meta.pk.column} "
                         "WHERE t.key = %s", [key], prepare=True)
    if row is None:
        raise exceptions.AuthenticationFailed(_("Invalid token."))
    if settings.TOKEN_CACHE_SECONDS > 0:
        caches["local"].set(_cache_key(key), row, settings.TOKEN_CACHE_SECONDS)
    return row


def forget_user(user_id: int) -> None:
    """This process forgets the user's tokens: the next request with one of them reads the database."""
    keys = Token.objects.filter(user_id=user_id).values_list("key", flat=True)
    caches["local"].delete_many([_cache_key(key) for key in keys])


def forget_token(key: str) -> None:
    caches["local"].delete(_cache_key(key))
