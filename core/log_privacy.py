"""Keep personal data out of request logs: query strings never reach a log line.

A query string can carry an address (the deprecated `GET /customers/?email=`), a token or a
search term. The development server logs each request line through the `django.server`
logger; this filter, on the console handler, replaces the query string with `?…` before the
line is formatted. gunicorn's access log has its own format without the query string
(config/gunicorn.py).
"""

from __future__ import annotations

import logging
import re

_QUERY = re.compile(r"\?[^\s\"]*")
REQUEST_LOGGERS = ("django.server", "gunicorn.access")


def without_query_string(text: str) -> str:
    return _QUERY.sub("?…", text)


class DropQueryStrings(logging.Filter):
    """Rewrites request-log records (never drops one): the path stays, the query string goes."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.name.startswith(REQUEST_LOGGERS):
            return True
        if isinstance(record.msg, str):
            record.msg = without_query_string(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(without_query_string(a) if isinstance(a, str) else a for a in record.args)
        elif isinstance(record.args, dict):  # gunicorn's atoms, should its logger be routed here
            atoms = {k: without_query_string(v) if isinstance(v, str) else v for k, v in record.args.items()}
            if "q" in atoms:
                atoms["q"] = ""
            record.args = atoms
        return True
