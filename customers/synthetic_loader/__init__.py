"""Write the synthetic shop (`core.synthetic`) into the project's tables.

On PostgreSQL the rows go in with binary COPY, built straight from the numpy columns: a
million customers and ten million orders are some sixty million rows, and formatting them as
text in Python would cost more than PostgreSQL takes to store them. The whole load is one
transaction: foreign keys, unique constraints and secondary indexes are set aside and rebuilt
(and so re-validated) at the end, which is several times faster than maintaining them row by
row, and a failure leaves the database as it was. Generation runs in a second thread so numpy
and PostgreSQL work at the same time.

Elsewhere (SQLite for the demo) the same rows go through `bulk_create`.

The package, by responsibility: `schema` (which model each generator table fills, column
checks), `binary_copy` (the COPY encoder), `indexes` (what is set aside and rebuilt),
`postgresql` and `orm` (the two writers), `load` (`load_synthetic`, the transaction around them).
"""

from core.pgcopy import COPY_HEADER, COPY_TRAILER
from customers.synthetic_loader.binary_copy import encode_binary_rows
from customers.synthetic_loader.load import ExistingDataError, LoadSummary, load_synthetic
from customers.synthetic_loader.orm import python_values
from customers.synthetic_loader.schema import TABLE_MODELS, ColumnSpec, column_specs, synthetic_models

__all__ = [
    "COPY_HEADER",
    "COPY_TRAILER",
    "TABLE_MODELS",
    "ColumnSpec",
    "ExistingDataError",
    "LoadSummary",
    "column_specs",
    "encode_binary_rows",
    "load_synthetic",
    "python_values",
    "synthetic_models",
]
