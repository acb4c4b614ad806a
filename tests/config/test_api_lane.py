"""config.api_lane: API requests with a token skip the browser's middleware; every other request keeps all of it."""

import pytest
from django.test import Client
from rest_framework.authtoken.models import Token

from tagging.accounts import DELETED_PREFIX
from tagging.models import Classification
from tests.tagging.helpers import project_with_tiles

pytestmark = pytest.mark.django_db


@pytest.fixture
def token(volunteer) -> str:
    return Token.objects.create(user=volunteer).key


def test_a_token_request_gets_json_and_security_headers_but_no_cookie_or_frame_header(client, token) -> None:
    response = client.get("/api/v1/me/", HTTP_AUTHORIZATION=f"Token {token}", HTTP_ACCEPT_LANGUAGE="ar")
    assert response.status_code == 200 and response.json()["username"] == "vol"
    assert response["X-Content-Type-Options"] == "nosniff"  # SecurityMiddleware
    assert response["Content-Language"] == "ar"  # LocaleMiddleware: errors come in the volunteer's language
    assert "X-Frame-Options" not in response and not response.cookies  # no clickjacking header, no session


def test_a_browser_request_still_gets_the_whole_chain(client, volunteer) -> None:
    client.force_login(volunteer)
    response = client.get("/api/v1/me/")
    assert response.status_code == 200 and response.json()["username"] == "vol"
    assert response["X-Frame-Options"] == "DENY"


def test_the_token_decides_who_asks_even_beside_another_users_session(client, token, django_user_model) -> None:
    client.force_login(django_user_model.objects.create_user("someone-else", password="else-pass-123"))
    assert client.get("/api/v1/me/", HTTP_AUTHORIZATION=f"Token {token}").json()["username"] == "vol"


def test_a_session_post_still_needs_its_csrf_token_and_a_token_post_does_not(volunteer, token) -> None:
    project_with_tiles()
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(volunteer)
    refused = browser.post("/api/v1/projects/raqqa/tasks/next/", {}, content_type="application/json")
    assert refused.status_code == 403 and "CSRF" in refused.json()["error"]["message"]
    app = Client(enforce_csrf_checks=True, HTTP_AUTHORIZATION=f"Token {token}")
    task = app.post("/api/v1/projects/raqqa/tasks/next/", {}, content_type="application/json")
    assert task.status_code == 200
    vote = app.post(f"/api/v1/tiles/{task.json()['tile']['id']}/classifications/", {"answer": "destroyed"},
                    content_type="application/json")
    assert vote.status_code == 201 and Classification.objects.filter(volunteer__username="vol").count() == 1


def test_a_bad_token_is_refused_in_the_lane(client) -> None:
    response = client.get("/api/v1/me/", HTTP_AUTHORIZATION="Token not-a-token")
    assert response.status_code in (401, 403) and "Invalid token" in response.json()["error"]["message"]


def test_an_account_is_deleted_through_the_lane_with_its_password(client, volunteer, token) -> None:
    wrong = client.delete("/api/v1/me/", {"password": "nope"}, content_type="application/json",
                          HTTP_AUTHORIZATION=f"Token {token}")
    assert wrong.status_code == 400
    deleted = client.delete("/api/v1/me/", {"password": "vol-pass-123"}, content_type="application/json",
                            HTTP_AUTHORIZATION=f"Token {token}")
    assert deleted.status_code == 204
    volunteer.refresh_from_db()
    assert not volunteer.is_active and volunteer.username.startswith(DELETED_PREFIX)


def test_pages_with_a_token_header_are_not_in_the_lane(client, volunteer, token) -> None:
    client.force_login(volunteer)
    response = client.get("/account/", HTTP_AUTHORIZATION=f"Token {token}")
    assert response.status_code == 200 and response["X-Frame-Options"] == "DENY"
