"""GDPR erasure step for the campaign tables (registered with customers.gdpr in CampaignsConfig.ready).

The ledger and tracking rows stay (the books and the experiments need them, by customer id), but
text a provider sent back may quote the address or name ("550 <ann@example.com>: unknown user"):
such reasons and details are replaced, since nothing of the customer may outlive the erasure.
"""

from __future__ import annotations

from functools import reduce
from operator import or_

from django.db.models import Q

REDACTED = "provider reply removed by GDPR erasure"


def scrub_campaign_rows(*, customer) -> None:
    from campaigns.models import Send, TrackingEvent

    values = [
        v
        for v in (customer.email, customer.phone, customer.first_name, customer.last_name)
        if v and len(v) >= 2
    ]
    if customer.email:
        values.append(customer.email.split("@", 1)[0])
    if not values:
        return
    Send.objects.filter(customer=customer).filter(
        reduce(or_, (Q(reason__icontains=v) for v in values))
    ).update(reason=REDACTED)
    TrackingEvent.objects.filter(customer=customer).filter(
        reduce(or_, (Q(detail__icontains=v) for v in values))
    ).update(detail=REDACTED)
