"""The builder's forms: the model's fields with the help a marketer needs beside each one.

Help texts live here rather than on the models so that rewording them needs no migration.
"""

from __future__ import annotations

from django import forms
from django.conf import settings

from campaigns.models import Campaign, Variant

CAMPAIGN_HELP = {
    "name": "Only you and your colleagues see it; the customer sees the variant's subject.",
    "channel": "Email or web push. Only customers with consent on this channel receive it.",
    "include_segments": "Customers in any of the ticked segments are in the audience.",
    "exclude_segments": "Customers in any of these are left out, even when an included segment has them.",
    "schedule_kind": "When the campaign goes out once you launch it.",
    "send_at": f"Date and time in {settings.TIME_ZONE}.",
    "local_send_date": "The date, read in each customer's own timezone.",
    "local_send_time": "The time of day in each customer's own timezone (customers without one use the zone below).",
    "cron": "Five fields: minute hour day month weekday, e.g. <code>0 9 * * 1</code> for Mondays at 9:00.",
    "schedule_timezone": "IANA zone such as <code>Europe/London</code>, for the cron line and for customers "
    "whose timezone is unknown. Empty: " + settings.TIME_ZONE + ".",
    "trigger_kind": "What starts a message to one customer.",
    "trigger_event_type": "The event type that fires it (view, cart, purchase, custom…).",
    "trigger_segment": "Entering this segment fires it.",
    "trigger_delay_minutes": "Wait this long after the trigger before sending (0: at once).",
    "control_percent": "This share of the audience gets nothing and is compared with the variants; "
    "0 turns the control group off.",
    "cap_messages": "At most this many messages per customer on this channel in the period, counting every "
    "campaign. Empty: no cap.",
    "cap_period_hours": "The length of the cap's period.",
    "cap_overflow": "What happens to a customer who already had their share.",
    "quiet_hours_start": "No sending from this time… (customer's local time; empty: none).",
    "quiet_hours_end": "…until this time; messages due in between wait for its end.",
    "send_rate": "Messages per second for this campaign; empty: the provider's rate from the settings.",
    "from_name": "Shown as the sender; empty: the site's default.",
    "reply_to": "Where replies go; empty: the sender address.",
    "utm_source": "Added to every tracked link, with medium and campaign (empty: not added).",
    "conversion_window_hours": "An order within this many hours of a click (else an open) is credited "
    "to the campaign in its report.",
    "recommendation_count": "Products per message in <code>recommendations</code>.",
    "recommendation_in_stock_only": "Leave out products that are out of stock.",
    "recommendation_categories": 'Only these categories, as a JSON list, e.g. <code>["mugs"]</code>; '
    "<code>[]</code>: all.",
    "recommendation_brands": "Only these brands, as a JSON list; <code>[]</code>: all.",
    "recommendation_exclude_skus": "Never recommend these SKUs (JSON list).",
}

VARIANT_HELP = {
    "name": "A short label shown in the report, e.g. A or B.",
    "weight": "Relative share: weights 1 and 1 split the audience (less the control group) in half, "
    "2 and 1 in two thirds and one third.",
    "based_on": "The saved template this variant was copied from, if any.",
    "subject": "A Jinja template, e.g. <code>{{ customer.first_name }}, picked for you</code>.",
    "preheader": "The line inboxes show after the subject.",
    "html": "The message; <code>{% for product in recommendations %}</code> loops over the customer's "
    "recommendations. Links are tracked and the unsubscribe link is <code>{{ links.unsubscribe_url }}</code>.",
    "text": "Empty: written from the HTML.",
    "push_url": "Where a click on the notification leads.",
    "channel": "For an experiment comparing channels: this variant goes out on this channel. "
    "Empty: the campaign's channel.",
    "send_local_time": "For an experiment on send time: send this variant at this time in each customer's "
    "timezone. Empty: the campaign's time.",
    "send_delay_minutes": "Or send it this many minutes after the campaign's time (not both).",
    "recommender": "For an experiment comparing recommendation algorithms: where this variant's "
    "<code>recommendations</code> come from. Empty: the default recommender.",
}


class CampaignForm(forms.ModelForm):
    class Meta:
        model = Campaign
        fields = list(CAMPAIGN_HELP)  # the admin passes its fieldsets' fields; these are a default
        help_texts = CAMPAIGN_HELP


class VariantForm(forms.ModelForm):
    class Meta:
        model = Variant
        fields = list(VARIANT_HELP)
        help_texts = VARIANT_HELP
