"""The Content-Security-Policy header (Django 5.2 has none of its own).

The policy allows what the admin and the API docs page load, all from this origin:
scripts only from files (``script-src 'self'``: no inline script runs, so an injected
``<script>`` does nothing; the chat playground's script is a static file and /api/docs is
drf-spectacular's split view, whose start-up script is a URL too), styles from files and
the ``style`` attributes and blocks Django's admin and Swagger UI write (``'unsafe-inline'``
for styles only), images from here and ``data:`` (Swagger UI's icons), fetches to this origin
only, and no framing (``frame-ancestors 'none'``, beside ``X-Frame-Options: DENY``).
``CONTENT_SECURITY_POLICY`` (settings, from the environment) replaces it; empty sends none,
which is the default with ``DEBUG`` (Django's debug pages use inline scripts).
"""

from __future__ import annotations

from django.conf import settings

DEFAULT_POLICY = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
                  "font-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'self'; "
                  "form-action 'self'; frame-ancestors 'none'")


class ContentSecurityPolicyMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        policy = settings.CONTENT_SECURITY_POLICY
        if policy and "Content-Security-Policy" not in response:
            response["Content-Security-Policy"] = policy
        return response
