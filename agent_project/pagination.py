from rest_framework.pagination import PageNumberPagination


class Pagination(PageNumberPagination):
    """``?page=N&page_size=M``; the page size is capped so one request cannot read a whole table."""

    page_size_query_param = "page_size"
    max_page_size = 200
