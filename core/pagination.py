from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.pagination import CursorPagination


class CreatedCursorPagination(CursorPagination):
    """Stable cursor pagination by primary key: new rows never shift a page already read.

    A cursor that does not decode is the caller's bad input (400 naming the parameter), not a
    missing page (DRF's default 404).
    """

    ordering = "-id"
    page_size = 100
    page_size_query_param = "page_size"
    max_page_size = 1000

    def decode_cursor(self, request):
        try:
            return super().decode_cursor(request)
        except NotFound:
            raise ValidationError({self.cursor_query_param: ["Invalid cursor."]}) from None
