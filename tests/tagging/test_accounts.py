"""Signing up, signing in, tokens, and rate limits."""

import pytest
from rest_framework.test import APIClient

from tests.tagging.helpers import project_with_tiles

pytestmark = pytest.mark.django_db


def test_a_volunteer_signs_up_with_a_pseudonym_and_no_email(client, django_user_model) -> None:
    page = client.get("/accounts/signup/")
    assert page.status_code == 200
    response = client.post("/accounts/signup/", {"username": "sparrow", "password1": "a-long-pass-phrase",
                                                 "password2": "a-long-pass-phrase"})
    assert response.status_code == 302
    user = django_user_model.objects.get(username="sparrow")
    assert user.email == "" and not user.is_staff
    assert client.get("/").status_code == 200 and b"sparrow" in client.get("/").content


def test_sign_in_and_out(client, volunteer) -> None:
    response = client.post("/accounts/login/", {"login": "vol", "password": "vol-pass-123"})
    assert response.status_code == 302
    assert b"vol" in client.get("/").content
    client.post("/accounts/logout/")
    assert b"Sign in" in client.get("/").content


def test_the_token_endpoint_is_rate_limited(volunteer, monkeypatch) -> None:
    from rest_framework.throttling import ScopedRateThrottle

    monkeypatch.setattr(ScopedRateThrottle, "THROTTLE_RATES", {**ScopedRateThrottle.THROTTLE_RATES, "token": "3/min"})
    codes = [APIClient().post("/api/v1/auth/token/", {"username": "vol", "password": "wrong"}).status_code
             for _ in range(4)]
    assert codes == [400, 400, 400, 429]


def test_submissions_are_rate_limited_per_volunteer(volunteer, monkeypatch) -> None:
    from rest_framework.throttling import ScopedRateThrottle

    from imagery.models import Tile

    project_with_tiles(cols=3, rows=2)
    api = APIClient()
    api.force_authenticate(volunteer)
    monkeypatch.setattr(ScopedRateThrottle, "THROTTLE_RATES", {**ScopedRateThrottle.THROTTLE_RATES, "submit": "2/min"})
    codes = [api.post(f"/api/v1/tiles/{tile.pk}/classifications/", {"answer": "no_damage", "seconds": 5},
                      format="json").status_code for tile in Tile.objects.all()[:3]]
    assert codes == [201, 201, 429]


def test_failed_sign_ins_are_rate_limited_per_account(client, volunteer) -> None:
    # ACCOUNT_RATE_LIMITS: 5 failures per account in 5 minutes; then even the right password waits.
    for _ in range(5):
        assert b"not correct" in client.post("/accounts/login/", {"login": "vol", "password": "guess"}).content
    blocked = client.post("/accounts/login/", {"login": "vol", "password": "vol-pass-123"})
    assert blocked.status_code == 200 and b"Too many failed login attempts" in blocked.content
    assert "_auth_user_id" not in client.session


def test_sign_ups_are_rate_limited_per_address(client, settings) -> None:
    settings.ACCOUNT_RATE_LIMITS = {**settings.ACCOUNT_RATE_LIMITS, "signup": "3/h/ip"}
    codes = []
    for i in range(4):
        client.logout()
        codes.append(client.post("/accounts/signup/", {"username": f"bird{i}", "password1": "a-long-pass-phrase",
                                                       "password2": "a-long-pass-phrase"}).status_code)
    assert codes == [302, 302, 302, 429]
