"""Batch scoring: every customer's top-n from a model version, written in bulk.

``plan_scoring`` cuts the model's customers into chunks (rows of ``ScoringChunk``);
``score_chunk`` leases one chunk, scores it with the engine (rules, explanations, one BLAS
thread) and replaces that chunk's rows in one transaction (COPY on PostgreSQL, bulk_create
elsewhere); ``finalise_scoring`` closes the run once every chunk is done and, when asked,
promotes the version. Readers only ever see the active version's rows, so a new version's
rows become visible all at once, when it is promoted.

Every step is safe to run twice: chunk leases and conditional state updates decide who does
what, and a chunk's write deletes that chunk's previous rows first.
"""

from __future__ import annotations

import dataclasses
import io
import logging
import time
from datetime import timedelta

import numpy as np
from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from catalog.models import Product
from core.pgcopy import COPY_HEADER, COPY_TRAILER
from customers.models import Customer
from recommender.engine.base import BaseRecommender
from recommender.engine.rules import RecommendationRules
from recommender.engine.types import RecommendationBatch
from recommender.models import ModelVersion, Recommendation, RecommenderConfig, ScoringChunk, ScoringRun
from recommender.services import artifacts, data

logger = logging.getLogger(__name__)

CHUNK_CUSTOMERS = 5000
# Customers scored per engine call inside a chunk: a (128 × products) score block stays in cache
# through scoring, rules, top-n and explanations (1,024 cost 40 % more CPU at 20,000 products).
CHUNK_BATCH = 128
LEASE = timedelta(minutes=20)
MAX_ATTEMPTS = 3


# --- rules and explanations -----------------------------------------------------------------


def rules_for(config: RecommenderConfig, **overrides) -> RecommendationRules:
    values = {
        "exclude_seen": config.exclude_purchased,
        "repurchase_window_days": config.repurchase_window_days,
        "now": time.time(),
        "exclude_out_of_stock": config.in_stock_only,
        "exclude_inactive": True,
        "diversity": float(config.diversity or 0.0),
    }
    values.update(overrides)
    return RecommendationRules(**values)


def prepare_model(version: ModelVersion) -> BaseRecommender:
    """The version's model with one BLAS thread and today's stock and activity flags."""
    model = artifacts.load_model(version=version)
    model.num_threads = 1
    fresh = data.catalog_flags(model.interactions_.item_ids)
    if model.catalog_ is not None:
        model.catalog_ = dataclasses.replace(model.catalog_, in_stock=fresh.in_stock, active=fresh.active)
    else:
        model.catalog_ = fresh
    return model


class CatalogSnapshot:
    """One read of the products per chunk: which model columns still exist."""

    def __init__(self, item_ids: np.ndarray) -> None:
        self.product_exists = _product_exists(item_ids)


# --- writing --------------------------------------------------------------------------------


def _batch_columns(
    batch: RecommendationBatch, *, keep_customer: np.ndarray, product_exists: np.ndarray | None
) -> tuple[np.ndarray, ...]:
    """(customer, rank, product, score, reason, because) columns of the entries kept, ranks dense."""
    customers = np.asarray(batch.user_ids).astype(np.int64)
    items = batch.items
    valid = (items >= 0) & keep_customer[:, None]
    if product_exists is not None:
        valid &= np.where(items >= 0, product_exists[np.maximum(items, 0)], False)
    # Ranks stay dense (1..k) after dropping entries.
    ranks = np.cumsum(valid, axis=1)
    rows, cols = np.nonzero(valid)
    item_ids = np.asarray(batch.item_ids).astype(np.int64)
    because = batch.because[rows, cols]
    return (
        customers[rows],
        ranks[rows, cols],
        item_ids[items[rows, cols]],
        batch.scores[rows, cols].astype(np.float64),
        batch.reasons[rows, cols].astype(np.int64),
        # The because-product's id, -1 for none (product ids are positive).
        np.where(because >= 0, item_ids[np.maximum(because, 0)], -1),
    )


# COPY's binary format (see ``core.pgcopy``): the scorer builds a batch's rows as one numpy
# record array, and PostgreSQL parses no text (integers and floats from text were most of its
# per-row CPU). Column order and types as in ``COPY_SQL``.
_COPY_FIELDS = (
    ("version", ">i8"),
    ("customer", ">i8"),
    ("rank", ">i2"),
    ("product", ">i8"),
    ("score", ">f8"),
    ("reason", ">i2"),
    ("because", ">i8"),
)


def _record_dtype(*, because: bool) -> np.dtype:
    fields = [("count", ">i2")]
    for name, kind in _COPY_FIELDS:
        fields.append((f"{name}_len", ">i4"))
        if name != "because" or because:
            fields.append((name, kind))
    return np.dtype(fields)  # packed: no alignment padding between fields


_WITH_BECAUSE = _record_dtype(because=True)
_WITHOUT_BECAUSE = _record_dtype(because=False)


def _copy_binary(
    version_id: int, customer_col, rank_col, product_col, score_col, reason_col, because_col
) -> bytes:
    """The rows in COPY's binary format (no header or trailer). Rows without a because-product
    (NULL) have another layout, so they come as a second block: row order does not matter."""
    has_because = because_col >= 0
    blocks = []
    for mask, dtype in ((has_because, _WITH_BECAUSE), (~has_because, _WITHOUT_BECAUSE)):
        count = int(mask.sum())
        if not count:
            continue
        records = np.empty(count, dtype=dtype)
        records["count"] = len(_COPY_FIELDS)
        for name, kind in _COPY_FIELDS:
            records[f"{name}_len"] = np.dtype(kind).itemsize
        records["version"] = version_id
        records["customer"] = customer_col[mask]
        records["rank"] = rank_col[mask]
        records["product"] = product_col[mask]
        records["score"] = score_col[mask]
        records["reason"] = reason_col[mask]
        if dtype is _WITH_BECAUSE:
            records["because"] = because_col[mask]
        else:
            records["because_len"] = -1
        blocks.append(records.tobytes())
    return b"".join(blocks)


def write_batch(
    *,
    version_id: int,
    batch: RecommendationBatch,
    product_exists: np.ndarray | None = None,
    replace: bool = True,
) -> int:
    """Replace the stored rows of the batch's customers for this version; returns rows written.

    Customers deleted since training are skipped; the caller holds the transaction.
    ``replace=False`` when the caller already removed the customers' rows.
    """
    if not len(batch):
        return 0
    customers = np.asarray(batch.user_ids).astype(np.int64)
    keep_customer = _existing_customers(customers)
    columns = _batch_columns(batch, keep_customer=keep_customer, product_exists=product_exists)
    if replace:
        _delete_rows(version_id, customers)
    written = len(columns[0])
    if not written:
        return 0
    if connection.vendor == "postgresql":
        payload = COPY_HEADER + _copy_binary(version_id, *columns) + COPY_TRAILER
        with connection.cursor() as cursor:
            raw = cursor.cursor if hasattr(cursor, "cursor") else cursor
            raw.copy_expert(COPY_SQL, io.BytesIO(payload))
    else:
        Recommendation.objects.bulk_create(
            [
                Recommendation(
                    model_version_id=version_id,
                    customer_id=c,
                    rank=r,
                    product_id=p,
                    score=s,
                    reason=why,
                    because_product_id=b if b >= 0 else None,
                )
                for c, r, p, s, why, b in zip(*(col.tolist() for col in columns), strict=True)
            ],
            batch_size=2000,
        )
    return written


def _existing_customers(ids: np.ndarray) -> np.ndarray:
    present = set(Customer.objects.filter(pk__in=ids.tolist()).values_list("pk", flat=True))
    return np.fromiter((int(i) in present for i in ids.tolist()), dtype=bool, count=len(ids))


def _delete_rows(version_id: int, customers: np.ndarray) -> None:
    table = Recommendation._meta.db_table
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                f"DELETE FROM {table} WHERE model_version_id = %s AND customer_id = ANY(%s)",  # noqa: S608
                [version_id, customers.tolist()],
            )
        else:
            Recommendation.objects.filter(
                model_version_id=version_id, customer_id__in=customers.tolist()
            ).delete()


COPY_SQL = (
    f"COPY {Recommendation._meta.db_table} "
    "(model_version_id, customer_id, rank, product_id, score, reason, because_product_id) "
    "FROM STDIN WITH (FORMAT binary)"
)


class _StreamedCopy:
    """The file psycopg2's ``copy_expert`` reads: each ``read`` scores and formats the next batch.

    One COPY per chunk, fed while it runs: PostgreSQL parses and indexes the rows of one batch
    (in its own process, on the other core) while this process computes the next, instead of
    the two taking turns batch by batch.
    """

    def __init__(self, pieces) -> None:
        self._pieces = iter(pieces)

    def read(self, size: int = -1) -> bytes:
        for piece in self._pieces:
            if piece:
                return piece
        return b""

    readline = read


# --- runs and chunks ------------------------------------------------------------------------


def plan_scoring(
    *, version_id: int, promote_when_done: bool = False, chunk_customers: int | None = None
) -> ScoringRun:
    """The running scoring run of a version (an existing one is reused: a task delivered twice)."""
    chunk_customers = chunk_customers or getattr(settings, "RECOMMENDER_SCORING_CHUNK", CHUNK_CUSTOMERS)
    with transaction.atomic():
        version = ModelVersion.objects.select_for_update().get(pk=version_id)
        if version.status not in (ModelVersion.Status.READY, ModelVersion.Status.RETIRED):
            raise ValueError(f"version {version.pk} is {version.status}; only a ready model can be scored")
        run = ScoringRun.objects.filter(model_version=version, status=ScoringRun.Status.RUNNING).first()
        if run is not None:
            if promote_when_done and not run.promote_when_done:
                ScoringRun.objects.filter(pk=run.pk).update(promote_when_done=True)
            return run
        total = version.n_customers
        bounds = list(range(0, total, chunk_customers))
        run = ScoringRun.objects.create(
            model_version=version,
            promote_when_done=promote_when_done,
            chunks_total=len(bounds),
            customers_total=total,
        )
        ScoringChunk.objects.bulk_create(
            [
                ScoringChunk(run=run, number=i, start=start, stop=min(start + chunk_customers, total))
                for i, start in enumerate(bounds)
            ]
        )
    return run


def _lease(chunk_id: int) -> ScoringChunk | None:
    """Take the chunk with one conditional UPDATE: of two deliveries of a task, one wins."""
    now = timezone.now()
    claimable = Q(state=ScoringChunk.State.PENDING) | Q(state=ScoringChunk.State.RUNNING, lease_until__lt=now)
    taken = (
        ScoringChunk.objects.filter(claimable, pk=chunk_id, attempts__lt=MAX_ATTEMPTS)
        .filter(run__status=ScoringRun.Status.RUNNING)
        .update(state=ScoringChunk.State.RUNNING, lease_until=now + LEASE, attempts=F("attempts") + 1)
    )
    if not taken:
        # A chunk that killed its worker MAX_ATTEMPTS times is failed with the reason, not retried forever.
        ScoringChunk.objects.filter(claimable, pk=chunk_id, attempts__gte=MAX_ATTEMPTS).update(
            state=ScoringChunk.State.FAILED, error=f"gave up after {MAX_ATTEMPTS} attempts", lease_until=None
        )
        return None
    return ScoringChunk.objects.get(pk=chunk_id)


def score_chunk(*, chunk_id: int) -> dict:
    """Score and store one chunk if it is free to take; returns what happened."""
    chunk = _lease(chunk_id)
    if chunk is None:
        return {"chunk": chunk_id, "skipped": True, "run_finished": _run_complete(chunk_id)}
    run = ScoringRun.objects.select_related("model_version__config").get(pk=chunk.run_id)
    version = run.model_version
    try:
        written = _score_range(version=version, chunk=chunk)
    except Exception as exc:  # noqa: BLE001 - the chunk records why, the reconciler retries
        logger.exception("scoring chunk %s failed", chunk.pk)
        ScoringChunk.objects.filter(pk=chunk.pk).update(
            state=ScoringChunk.State.PENDING if chunk.attempts < MAX_ATTEMPTS else ScoringChunk.State.FAILED,
            lease_until=None,
            error=f"{type(exc).__name__}: {exc}"[:2000],
        )
        raise
    return {"chunk": chunk_id, "rows": written, "run_finished": _run_complete(chunk_id)}


def _score_range(*, version: ModelVersion, chunk: ScoringChunk) -> int:
    model = prepare_model(version)
    config = version.config
    rules = rules_for(config)
    item_ids = model.interactions_.item_ids
    catalog = CatalogSnapshot(item_ids)
    user_ids = model.interactions_.user_ids
    rows = np.arange(chunk.start, chunk.stop)
    written = 0
    with transaction.atomic():
        if connection.vendor == "postgresql":
            # Rows and the chunk's DONE state commit together, so a commit lost in a server crash
            # only means the chunk is scored again: no need to wait for the WAL flush.
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL synchronous_commit TO OFF")
        if chunk.stop > chunk.start:
            # The model's customers are sorted by id, so a chunk is an id range: one index range
            # scan clears what an earlier run of this version stored for them, and one query
            # says which of them still exist (the COPY below leaves no room for other queries).
            low, high = int(user_ids[chunk.start]), int(user_ids[chunk.stop - 1])
            Recommendation.objects.filter(
                model_version_id=version.pk, customer_id__gte=low, customer_id__lte=high
            ).delete()
            present = np.asarray(
                Customer.objects.filter(pk__gte=low, pk__lte=high).values_list("pk", flat=True),
                dtype=np.int64,
            )
            chunk_customers = np.asarray(user_ids[chunk.start : chunk.stop]).astype(np.int64)
            exists = dict(
                zip(chunk_customers.tolist(), np.isin(chunk_customers, present).tolist(), strict=True)
            )
        batches = model.iter_batches(rows, n=config.items_per_customer, rules=rules, chunk_size=CHUNK_BATCH)
        if connection.vendor == "postgresql" and len(rows):

            def pieces():
                nonlocal written
                yield COPY_HEADER
                for batch in batches:
                    keep = np.fromiter(
                        (exists[int(c)] for c in np.asarray(batch.user_ids).tolist()),
                        dtype=bool,
                        count=len(batch),
                    )
                    columns = _batch_columns(batch, keep_customer=keep, product_exists=catalog.product_exists)
                    written += len(columns[0])
                    yield _copy_binary(version.pk, *columns)
                yield COPY_TRAILER

            with connection.cursor() as cursor:
                raw = cursor.cursor if hasattr(cursor, "cursor") else cursor
                raw.copy_expert(COPY_SQL, _StreamedCopy(pieces()), size=1 << 20)
        else:
            for batch in batches:
                written += write_batch(
                    version_id=version.pk,
                    batch=batch,
                    product_exists=catalog.product_exists,
                    replace=False,
                )
        ScoringChunk.objects.filter(pk=chunk.pk, state=ScoringChunk.State.RUNNING).update(
            state=ScoringChunk.State.DONE, rows_written=written, lease_until=None, error=""
        )
    return written


def _product_exists(item_ids: np.ndarray) -> np.ndarray:
    present = set(Product.objects.values_list("pk", flat=True))
    return np.fromiter(
        (int(i) in present for i in np.asarray(item_ids).tolist()), dtype=bool, count=len(item_ids)
    )


def _run_complete(chunk_id: int) -> bool:
    run_id = ScoringChunk.objects.filter(pk=chunk_id).values_list("run_id", flat=True).first()
    if run_id is None:
        return False
    return not ScoringChunk.objects.filter(run_id=run_id).exclude(state=ScoringChunk.State.DONE).exists()


def finalise_scoring(*, run_id: int) -> ScoringRun:
    """Close a run whose chunks are all done: stamp the version, promote if asked, prune old rows."""
    from recommender.services.registry import promote

    with transaction.atomic():
        run = ScoringRun.objects.select_for_update().select_related("model_version").get(pk=run_id)
        if run.status != ScoringRun.Status.RUNNING:
            return run
        states = set(run.chunks.values_list("state", flat=True))
        if states - {ScoringChunk.State.DONE, ScoringChunk.State.FAILED}:
            return run  # chunks still pending or running: not yet
        failed = ScoringChunk.State.FAILED in states
        run.status = ScoringRun.Status.FAILED if failed else ScoringRun.Status.DONE
        run.finished_at = timezone.now()
        run.rows_written = sum(run.chunks.values_list("rows_written", flat=True))
        if failed:
            run.error = "; ".join(
                run.chunks.filter(state=ScoringChunk.State.FAILED).values_list("error", flat=True)
            )[:4000]
        run.save()
        if not failed:
            ModelVersion.objects.filter(pk=run.model_version_id).update(scored_at=run.finished_at)
            if run.promote_when_done:
                promote(version_id=run.model_version_id, score_if_needed=False)
    if not failed:
        prune_old_rows(config_id=run.model_version.config_id)
    return run


def prune_old_rows(*, config_id: int) -> int:
    """Delete stored rows of versions that are neither active, its rollback target, nor being scored."""
    config = RecommenderConfig.objects.select_related("active_version").get(pk=config_id)
    keep = {config.active_version_id}
    if config.active_version is not None:
        keep.add(config.active_version.previous_version_id)
    keep |= set(
        ScoringRun.objects.filter(model_version__config=config, status=ScoringRun.Status.RUNNING).values_list(
            "model_version_id", flat=True
        )
    )
    # The newest scored version (maybe not promoted yet) is kept as well.
    newest = (
        ModelVersion.objects.filter(config=config, scored_at__isnull=False)
        .order_by("-scored_at")
        .values_list("pk", flat=True)
        .first()
    )
    keep.add(newest)
    stale = list(
        ModelVersion.objects.filter(config=config)
        .exclude(pk__in=[k for k in keep if k])
        .values_list("pk", flat=True)
    )
    if not stale:
        return 0
    deleted, _ = Recommendation.objects.filter(model_version_id__in=stale).delete()
    ModelVersion.objects.filter(pk__in=stale).update(scored_at=None)
    return deleted


def reclaim_expired(*, max_age: timedelta | None = None) -> list[int]:
    """Chunks whose lease expired (a killed worker) or that wait too long: ids to enqueue again."""
    now = timezone.now()
    stale_pending = now - (max_age or timedelta(minutes=10))
    return list(
        ScoringChunk.objects.filter(run__status=ScoringRun.Status.RUNNING)
        .filter(
            Q(state=ScoringChunk.State.RUNNING, lease_until__lt=now)
            | Q(state=ScoringChunk.State.PENDING, run__started_at__lt=stale_pending)
        )
        .values_list("pk", flat=True)
    )


def score_all(
    *, version_id: int, promote_when_done: bool = False, chunk_customers: int | None = None
) -> ScoringRun:
    """Score every customer of a version in this process (the Celery path fans the chunks out)."""
    run = plan_scoring(
        version_id=version_id, promote_when_done=promote_when_done, chunk_customers=chunk_customers
    )
    for chunk_id in run.chunks.order_by("number").values_list("pk", flat=True):
        score_chunk(chunk_id=chunk_id)
    return finalise_scoring(run_id=run.pk)
