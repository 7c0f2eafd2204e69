"""CSV imports for customers, products and orders, and the online-retail sample format.

Imports reuse the bulk services (same validation, same upsert, same outbox messages). A file is
all or nothing by default: one bad row and nothing is written, with a report naming the line
and field; `partial=True` keeps the valid rows and reports the rest.
"""

from customers.importers.base import ImportReport, import_file

__all__ = ["ImportReport", "import_file"]
