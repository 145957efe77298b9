from django.urls import re_path


def api_path(route: str, view, name: str | None = None):
    """A route that answers with and without a trailing slash, as the seed's clients
    call both. ``route`` is a regex body without anchors or the final slash."""
    return re_path(rf"^{route}/?$", view, name=name)
