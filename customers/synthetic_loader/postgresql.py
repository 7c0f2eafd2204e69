"""The PostgreSQL load: binary COPY fed by a generator thread, indexes rebuilt at the end.

Generation runs in a second thread so numpy and PostgreSQL work at the same time; a bounded
queue keeps the generator at most a dozen tables ahead of COPY.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from io import BytesIO
from typing import TYPE_CHECKING

from core.pgcopy import COPY_HEADER, COPY_TRAILER
from customers.synthetic_loader.binary_copy import encode_binary_rows
from customers.synthetic_loader.indexes import set_aside_indexes
from customers.synthetic_loader.schema import ColumnSpec, column_specs, models_by_table, tables_to_store

if TYPE_CHECKING:
    from collections.abc import Callable

    from core.synthetic import SyntheticShop
    from customers.synthetic_loader.load import LoadSummary


def load_postgresql(
    cursor,
    connection,
    shop: SyntheticShop,
    summary: LoadSummary,
    on_batch: Callable[[int, int], None] | None,
    phase: Callable[[str], None],
    maintenance_work_mem: str,
) -> None:
    model_by_table = models_by_table()
    db_tables = [m._meta.db_table for m in model_by_table.values()]
    cursor.execute("SELECT set_config('maintenance_work_mem', %s, true)", [maintenance_work_mem])
    aside = set_aside_indexes(cursor, db_tables)
    for statement in aside.drop:
        cursor.execute(statement)
    raw = cursor.cursor  # psycopg2's cursor, for copy_expert
    total_batches = shop.config.batches
    work: queue.Queue = queue.Queue(maxsize=12)
    stop = threading.Event()
    produce_seconds = [0.0]

    def produce() -> None:
        try:
            specs: dict[str, list[ColumnSpec]] = {}
            batches = iter(shop.tables())
            batch_no = 0
            while True:
                tick = time.perf_counter()  # time spent waiting for the loader is not generation
                batch = next(batches, None)
                if batch is None:
                    break
                ready = []
                for model, table in tables_to_store(batch, model_by_table):
                    if table.name not in specs:
                        specs[table.name] = column_specs(model, table)
                    payload = encode_binary_rows(table, specs[table.name])
                    ready.append(("rows", model._meta.db_table, specs[table.name], payload, len(table)))
                produce_seconds[0] += time.perf_counter() - tick
                for item in ready:
                    _put(work, stop, item)
                _put(work, stop, ("batch", batch_no, None, None, 0))
                batch_no += 1
            _put(work, stop, ("done", None, None, None, 0))
        except _Stopped:
            return
        except BaseException as exc:  # noqa: BLE001 - handed to the loading thread, which re-raises
            with contextlib.suppress(_Stopped):
                _put(work, stop, ("error", exc, None, None, 0))

    producer = threading.Thread(target=produce, name="synthetic-generator", daemon=True)
    copy_seconds = 0.0
    producer.start()
    try:
        while True:
            what, a, specs, payload, count = work.get()
            if what == "error":
                raise a
            if what == "done":
                break
            if what == "batch":
                if a > 0 and on_batch:  # batch 0 is the catalogue
                    on_batch(a, total_batches)
                continue
            t = time.perf_counter()
            columns = ", ".join(connection.ops.quote_name(s.column) for s in specs)
            raw.copy_expert(
                f"COPY {connection.ops.quote_name(a)} ({columns}) FROM STDIN WITH (FORMAT binary)",
                BytesIO(COPY_HEADER + payload + COPY_TRAILER),
                size=1 << 20,
            )
            spent = time.perf_counter() - t
            copy_seconds += spent
            summary.copy_seconds[a] = summary.copy_seconds.get(a, 0.0) + spent
            summary.rows[a] = summary.rows.get(a, 0) + count
    finally:
        stop.set()
        producer.join()
    summary.seconds["generate"] = produce_seconds[0]
    summary.seconds["copy"] = copy_seconds
    phase(f"rebuilding {len(aside.restore)} indexes and constraints")
    t = time.perf_counter()
    for name, statement in aside.restore:
        tick = time.perf_counter()
        cursor.execute(statement)
        summary.rebuild_seconds[name] = time.perf_counter() - tick
    summary.seconds["indexes"] = time.perf_counter() - t


class _Stopped(Exception):
    """The loading thread gave up; the generator thread should stop too."""


def _put(work: queue.Queue, stop: threading.Event, item) -> None:
    while not stop.is_set():
        try:
            work.put(item, timeout=0.2)
            return
        except queue.Full:
            continue
    raise _Stopped
