"""Volunteers' accounts: leaving the platform without taking the evidence with them."""

import secrets

from django.contrib.auth.models import AbstractUser
from django.db import transaction
from rest_framework.authtoken.models import Token

DELETED_PREFIX = "deleted-"


def delete_account(*, user: AbstractUser) -> str:
    """Delete a volunteer's personal data; their classifications stay, under a meaningless pseudonym.

    The user row is kept (emptied) rather than removed: the consensus weighs each vote by its
    volunteer's reliability, and an evidence bundle must be able to show that two votes came
    from one person, without saying who. So the username becomes a random pseudonym, the
    e-mail addresses, names, password, API token, roles and memberships go, and the account
    can never sign in again (changing the password also ends every open session).
    Returns the new pseudonym.
    """
    from allauth.account.models import EmailAddress

    pseudonym = f"{DELETED_PREFIX}{secrets.token_hex(6)}"
    with transaction.atomic():
        EmailAddress.objects.filter(user=user).delete()
        Token.objects.filter(user=user).delete()
        user.memberships.all().delete()
        user.groups.clear()
        user.user_permissions.clear()
        user.username = pseudonym
        user.email = user.first_name = user.last_name = ""
        user.is_active = user.is_staff = user.is_superuser = False
        user.set_unusable_password()
        user.save()
    return pseudonym
