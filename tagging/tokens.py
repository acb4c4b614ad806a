"""Who is asking: the API's token authentication (REST_FRAMEWORK's DEFAULT_AUTHENTICATION_CLASSES).

DRF imports it while it reads its settings, so it imports nothing of the platform's but tagging.rows.
"""

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from rest_framework import authentication, exceptions
from rest_framework.authtoken.models import Token

from tagging import rows


class TokenAuthentication(authentication.TokenAuthentication):
    """DRF's token authentication (the Authorization: Token header), with the user loaded by one plain query.

    Every request of a volunteer's app runs it (tagging.rows).
    """

    def authenticate_credentials(self, key: str) -> tuple[AbstractBaseUser, Token]:
        users = get_user_model()
        row = rows.fetch_one(f"SELECT {rows.columns(users, 'u')} FROM {users._meta.db_table} u "
                             f"JOIN {Token._meta.db_table} t ON t.user_id = u.{users._meta.pk.column} "
                             "WHERE t.key = %s", [key])
        if row is None:
            raise exceptions.AuthenticationFailed("Invalid token.")
        user = rows.instance(users, iter(row))
        if not user.is_active:
            raise exceptions.AuthenticationFailed("User inactive or deleted.")
        return user, Token(key=key, user=user)
