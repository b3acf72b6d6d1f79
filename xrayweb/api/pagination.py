from rest_framework.pagination import PageNumberPagination


class ApiPagination(PageNumberPagination):
    """?page=N&per_page=M; M is capped, so no request can ask for the whole table."""

    page_size = 50
    page_size_query_param = "per_page"
    max_page_size = 100
