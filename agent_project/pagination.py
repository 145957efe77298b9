from django.conf import settings
from rest_framework.pagination import PageNumberPagination


class Pagination(PageNumberPagination):
    """``?page=N&page_size=M``; the page size is capped so one request cannot read a whole table."""

    page_size_query_param = "page_size"

    @property
    def max_page_size(self) -> int:
        return settings.MAX_PAGE_SIZE  # the same cap the request-limits middleware answers 422 above

    def paginate_queryset(self, queryset, request, view=None):
        """A page past the last is 404 ``page_not_found``, not DRF's bare "Invalid page." under the
        code an unknown route gets (a page that is not a number never gets here: 422 ``invalid_page``)."""
        from rest_framework.exceptions import NotFound

        from agent_project.errors import ApiError

        try:
            return super().paginate_queryset(queryset, request, view)
        except NotFound:
            raise ApiError(404, "page_not_found", "There is no such page: the list is shorter.",
                           {"page": request.query_params.get(self.page_query_param)}) from None


def paginated_schema(name: str, item):
    """The page envelope of :class:`Pagination` for the OpenAPI schema (views built on
    ``APIView`` paginate by hand, so drf-spectacular cannot infer it)."""
    from drf_spectacular.utils import inline_serializer
    from rest_framework import serializers

    return inline_serializer(name, {
        "count": serializers.IntegerField(), "next": serializers.URLField(allow_null=True),
        "previous": serializers.URLField(allow_null=True), "results": item(many=True),
    })
