"""The segment rule language: JSON -> validated tree -> one SQL query (see docs/segment-rules.md)."""

from segments.rules.compiler import compile_rule, matching_customers
from segments.rules.errors import RuleError, RuleValidationError
from segments.rules.parser import parse_rule
from segments.rules.validation import check_rule, validate_rule

__all__ = [
    "RuleError",
    "RuleValidationError",
    "check_rule",
    "compile_rule",
    "matching_customers",
    "parse_rule",
    "validate_rule",
]
