"""Exceptions the recommender engine raises on bad input.

They subclass ``ValueError`` so that callers who only know "the input was wrong" can catch
one type, while the CLI, the Celery task and the API can tell a bad training set from a bad
file and turn each into its own clear message.
"""


class RecommenderError(ValueError):
    """Base class of every input problem the engine reports."""


class TrainingDataError(RecommenderError):
    """The training interactions cannot produce a model (empty, one customer, no items).

    A training run that raises it must leave the previously active model in place.
    """


class CapacityError(RecommenderError):
    """The algorithm would need more memory or time than its configured limit allows.

    EASE inverts an items × items matrix: past a few tens of thousands of products that
    costs gigabytes and minutes, so it refuses instead of swapping the machine to death.
    """


class InteractionFileError(RecommenderError):
    """An interactions CSV is missing, empty, or lacks the required columns."""


class UnknownAlgorithmError(RecommenderError):
    """The algorithm name is not in the registry."""
