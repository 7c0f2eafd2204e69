"""Synthetic shop data with the structure real retail data has, at any scale.

Benchmarks need a million customers; the shared retail sample has 756. Uniform random data would
make every benchmark lie: recommenders would have nothing to learn, RFM quintiles would be flat
and lifetime-value models would fit noise. So the generator reproduces the regularities the
project's models rely on:

* purchase frequency: each customer buys at a Gamma-distributed rate and drops out after a
  Beta-geometric number of purchases (the BG/NBD story), so most buy rarely, a few very often,
  and some stop;
* product popularity: Zipf over products, with each customer loyal to two favourite categories
  (drawn in proportion to each category's popularity, which keeps the overall product
  distribution exactly Zipf while giving recommenders co-purchase structure to learn);
* time: daily, weekly and yearly seasonality (Black Friday and Christmas peaks), in each
  customer's local time;
* returns and cancellations as negative lines, browsing events leading up to purchases,
  a consent ledger with double opt-in, withdrawals and the derived state, a loyalty program
  whose ledger follows its own rules (tier multipliers, redemptions, oldest points first).

Pure numpy, no Django: benchmarks and notebooks use it directly and
`customers.synthetic_loader` writes it into the database. Output is a sequence of `Table`s whose
column names are the model fields' attribute names. Everything is deterministic for a config
(seed included): customers are generated in fixed batches of `CUSTOMERS_PER_BATCH`, each from

The package is split by entity: `customers`, `consent`, `catalog`, `orders` (orders and events),
`loyalty`, each adding its step to the batch (`shop._Batch`); `config`, `tables`, `season` and
`vocabulary` hold what they share. Everything callers use is importable from `core.synthetic`.
"""

from core.synthetic.config import (
    BOUNCED_SHARE,
    COMPLAINT_SHARE,
    CUSTOMERS_PER_BATCH,
    DEFAULT_END,
    DOUBLE_OPT_IN_SHARE,
    EMAIL_GRANTED_SHARE,
    EMAIL_PENDING_SHARE,
    EMAIL_WITHDRAWN_SHARE,
    EXISTING_CUSTOMER_SHARE,
    NON_BUYER_JOIN_RATE,
    PHONE_SHARE,
    POINTS_EXPIRY_DAYS,
    PUSH_GRANTED_SHARE,
    PUSH_WITHDRAWN_SHARE,
    REDEEM_PROBABILITY,
    RESERVED_EMAIL_DOMAINS,
    RESERVED_TOP_LEVEL_DOMAINS,
    SMS_GRANTED_SHARE,
    SMS_WITHDRAWN_SHARE,
    SOFT_DELETED_SHARE,
    US_PER_DAY,
    US_PER_HOUR,
    US_PER_MINUTE,
    US_PER_SECOND,
    SyntheticConfig,
    check_email_domain,
)
from core.synthetic.season import yearly_profile
from core.synthetic.shop import SyntheticShop, collect
from core.synthetic.tables import Table
from core.synthetic.vocabulary import (
    ADJECTIVES,
    COLOURS,
    COUNTRIES,
    DEPARTMENTS,
    DOUBLE_OPT_IN_LOCALES,
    NAMES,
    REWARDS,
    SIGNUP_CHANNELS,
    TIERS,
)

__all__ = [
    "ADJECTIVES",
    "BOUNCED_SHARE",
    "COLOURS",
    "COMPLAINT_SHARE",
    "COUNTRIES",
    "CUSTOMERS_PER_BATCH",
    "DEFAULT_END",
    "DEPARTMENTS",
    "DOUBLE_OPT_IN_LOCALES",
    "DOUBLE_OPT_IN_SHARE",
    "EMAIL_GRANTED_SHARE",
    "EMAIL_PENDING_SHARE",
    "EMAIL_WITHDRAWN_SHARE",
    "EXISTING_CUSTOMER_SHARE",
    "NAMES",
    "NON_BUYER_JOIN_RATE",
    "PHONE_SHARE",
    "POINTS_EXPIRY_DAYS",
    "PUSH_GRANTED_SHARE",
    "PUSH_WITHDRAWN_SHARE",
    "REDEEM_PROBABILITY",
    "RESERVED_EMAIL_DOMAINS",
    "RESERVED_TOP_LEVEL_DOMAINS",
    "REWARDS",
    "SIGNUP_CHANNELS",
    "SMS_GRANTED_SHARE",
    "SMS_WITHDRAWN_SHARE",
    "SOFT_DELETED_SHARE",
    "TIERS",
    "US_PER_DAY",
    "US_PER_HOUR",
    "US_PER_MINUTE",
    "US_PER_SECOND",
    "SyntheticConfig",
    "SyntheticShop",
    "Table",
    "check_email_domain",
    "collect",
    "yearly_profile",
]
