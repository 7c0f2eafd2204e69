"""Refuse oversized request bodies before anything reads them, and malformed ones after."""

from __future__ import annotations

from django.conf import settings
from django.http import JsonResponse


class RequestBodyLimitMiddleware:
    """Answer 413 with a JSON error when Content-Length exceeds DATA_UPLOAD_MAX_MEMORY_SIZE.

    Django raises RequestDataTooBig lazily, deep inside parsing, which DRF turns into a 400 or a
    500 depending on where it is read; checking the header up front gives one clear answer.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        length = request.META.get("CONTENT_LENGTH")
        if limit and length:
            try:
                size = int(length)
            except ValueError:
                return JsonResponse({"detail": "Invalid Content-Length header."}, status=400)
            if size > limit and not request.path.startswith("/admin/"):
                return JsonResponse(
                    {
                        "detail": f"Request body of {size} bytes exceeds the limit of {limit} bytes.",
                        "code": "request_too_large",
                        "limit_bytes": limit,
                    },
                    status=413,
                )
        return self.get_response(request)

    def process_exception(self, request, exception):
        """A body nested too deeply for json.loads (RecursionError) in a view that parses JSON itself
        (the delivery and ESP webhooks) is the sender's malformed request: 400, never 500."""
        if isinstance(exception, RecursionError):
            return JsonResponse({"detail": "Malformed request body: nested too deeply."}, status=400)
        return None
