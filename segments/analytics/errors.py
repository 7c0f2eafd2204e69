"""Errors raised by the customer-analytics models.

Two kinds, because callers react differently: malformed input is a bug or a bad import upstream
(fix the data), while a model that cannot be fitted on well-formed data is a fact about the
customer base (too little history, nobody came back) that a scheduled job should record and
show to the marketer instead of crashing.
"""


class CustomerDataError(ValueError):
    """The input arrays are malformed: negative, missing, mismatched or inconsistent values."""


class ModelFitError(RuntimeError):
    """The data are well formed but the model cannot be fitted to them.

    The message says why in words a marketer or an operator can act on (for example "no customer
    made a repeat purchase"), because it ends up on the analytics page.
    """
