from django.urls import re_path


def api_path(route: str, view, name: str | None = None):
    """A route that answers with and without a trailing slash, as the seed's clients
    call both. ``route`` is a regex body without anchors or the final slash."""
    return re_path(rf"^{route}/?$", view, name=name)


def schema_without_optional_slash(result, generator, request, public):
    """drf-spectacular post-processing hook: document ``/health`` rather than ``/health/``
    for routes made by :func:`api_path` (both forms are served)."""
    result["paths"] = {
        (path.rstrip("/") if path != "/" else path): item for path, item in result.get("paths", {}).items()
    }
    return result
