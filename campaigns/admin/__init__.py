"""The campaigns admin: the builder (campaign.py) with its pages (pages.py, transitions.py) and the
read-only ledger screens (ledger.py). Importing the package registers them all."""

from campaigns.admin import ledger
from campaigns.admin.campaign import CampaignAdmin, VariantInline

__all__ = ["CampaignAdmin", "VariantInline", "ledger"]
