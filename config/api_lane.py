"""The API's lane for token clients: requests to /api/ that carry `Authorization: Token` skip the browser's middleware.

A volunteer's app makes two requests per vote, each authenticated by its token. The browser's middleware
(sessions, CSRF, authentication from the session, messages, clickjacking headers, allauth, static files) has
nothing to do for them, yet ran on every one: taking it out of their way cut a vote's Python time by about 11%
(cProfile of both requests, in process, against bench.volunteers' database: 0.31 of 2.9 s for 300 votes).
TokenApiLane, first in MIDDLEWARE, sends such requests through a second, short chain
(settings.TOKEN_API_MIDDLEWARE) to the same URLs and views; every other request goes down the full chain.

What a token request does not get, and why that is right:
- no session and no request.user from a cookie: DRF's SessionAuthentication finds no user, and the token
  authenticates (a session cookie sent beside a token no longer wins over it);
- no CSRF check: a token is not ambient authority, a browser never sends it on its own;
- no messages, no X-Frame-Options: JSON is neither a page nor framed.
The short chain keeps security headers, the language from Accept-Language (translated error messages) and
CommonMiddleware's host and slash rules.
"""

from collections.abc import Callable

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.handlers.base import BaseHandler
from django.core.handlers.exception import convert_exception_to_response
from django.http import HttpRequest, HttpResponse
from django.utils.module_loading import import_string

API_PREFIX = "/api/"
TOKEN_PREFIX = "Token "


class _Chain(BaseHandler):
    """Django's request handling (URL resolution, the view, exceptions to responses) behind the given middleware."""

    def __init__(self, middleware: list[str]) -> None:
        self._view_middleware, self._template_response_middleware, self._exception_middleware = [], [], []
        handler = convert_exception_to_response(self._get_response)
        for path in reversed(middleware):
            instance = import_string(path)(handler)
            hooks = [name for name in ("process_view", "process_template_response", "process_exception")
                     if hasattr(instance, name)]
            if hooks:  # the short chain has no place for them: keep it to request/response middleware
                raise ImproperlyConfigured(f"TOKEN_API_MIDDLEWARE: {path} has {', '.join(hooks)}")
            handler = convert_exception_to_response(instance)
        self._middleware_chain = handler


class TokenApiLane:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        self.token_chain = _Chain(settings.TOKEN_API_MIDDLEWARE)._middleware_chain

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path_info.startswith(API_PREFIX) and request.META.get(
                "HTTP_AUTHORIZATION", "").startswith(TOKEN_PREFIX):
            return self.token_chain(request)
        return self.get_response(request)
