"""Model artifacts in Django file storage, and a small per-process cache of loaded models.

An artifact is a pickle of ``{"format", "version_id", "algorithm", "model"}`` written under
``MEDIA_ROOT/models/``. Loading checks the format number and that the file belongs to the
version that names it, so a copied or stale file is refused rather than served. Pickles are
only ever read from our own storage, never from user uploads.
"""

from __future__ import annotations

import pickle
import threading
from collections import OrderedDict

from django.core.files.base import ContentFile

from recommender.engine.base import BaseRecommender
from recommender.models import ModelVersion

ARTIFACT_FORMAT = 1
_CACHE_SIZE = 3
_cache: OrderedDict[tuple[int, str], BaseRecommender] = OrderedDict()
_lock = threading.Lock()


class ArtifactError(RuntimeError):
    pass


def save_artifact(*, version: ModelVersion, model: BaseRecommender) -> None:
    payload = pickle.dumps(
        {"format": ARTIFACT_FORMAT, "version_id": version.pk, "algorithm": version.algorithm, "model": model},
        protocol=pickle.HIGHEST_PROTOCOL,
    )
    version.artifact.save(f"{version.config.name}-v{version.pk}.pkl", ContentFile(payload), save=False)


def load_model(*, version: ModelVersion) -> BaseRecommender:
    """The fitted model of a version, from the process cache or storage (checked)."""
    if not version.artifact:
        raise ArtifactError(f"model version {version.pk} has no artifact")
    key = (version.pk, version.artifact.name)
    with _lock:
        model = _cache.get(key)
        if model is not None:
            _cache.move_to_end(key)
            return model
    with version.artifact.open("rb") as handle:
        payload = pickle.load(handle)  # noqa: S301 - our own storage, written by save_artifact
    if not isinstance(payload, dict) or payload.get("format") != ARTIFACT_FORMAT:
        raise ArtifactError(f"artifact of version {version.pk} has an unknown format")
    if payload.get("version_id") != version.pk:
        raise ArtifactError(f"artifact {version.artifact.name} belongs to another version")
    model = payload["model"]
    with _lock:
        _cache[key] = model
        while len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
    return model


def forget(version_id: int) -> None:
    with _lock:
        for key in [k for k in _cache if k[0] == version_id]:
            del _cache[key]
