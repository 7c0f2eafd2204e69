"""Customer analytics without Django: purchase summaries, BG/NBD churn and purchase forecasts,
Gamma-Gamma spend and lifetime value, RFM scores and groups, behavioural clusters.

Everything here takes and returns numpy arrays and frozen dataclasses, so the Django side can feed
it from a query and write the results back in bulk, and a notebook can use it directly. See
docs/customer-analytics.md for what the numbers mean to a marketer.
"""

from segments.analytics.bgnbd import BGNBDModel, fit_bgnbd
from segments.analytics.clusters import ClusterProfile, CustomerClusters, cluster_customers
from segments.analytics.errors import CustomerDataError, ModelFitError
from segments.analytics.gamma_gamma import GammaGammaModel, customer_lifetime_value, fit_gamma_gamma
from segments.analytics.rfm import (
    DEFAULT_GROUP_DESCRIPTIONS,
    DEFAULT_RFM_MAPPING,
    RFMMapping,
    RFMMappingError,
    RFMRule,
    quintile_scores,
)
from segments.analytics.summary import CustomerSummary, build_customer_summary

__all__ = [
    "DEFAULT_GROUP_DESCRIPTIONS",
    "DEFAULT_RFM_MAPPING",
    "BGNBDModel",
    "ClusterProfile",
    "CustomerClusters",
    "CustomerDataError",
    "CustomerSummary",
    "GammaGammaModel",
    "ModelFitError",
    "RFMMapping",
    "RFMMappingError",
    "RFMRule",
    "build_customer_summary",
    "cluster_customers",
    "customer_lifetime_value",
    "fit_bgnbd",
    "fit_gamma_gamma",
    "quintile_scores",
]
