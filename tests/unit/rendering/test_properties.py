"""Properties over arbitrary customer data: headers stay intact, markers change nothing."""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import time

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from campaigns.rendering import EmailTemplates, Mailbox, RenderLimits, build_email, render_email
from campaigns.rendering.environment import RenderedHtml, render_part
from campaigns.rendering.limits import RenderBudget
from tests.unit.rendering.sample_context import TYPICAL_EMAIL, sample_context

#: Any text, weighted towards what breaks headers and HTML.
nasty_text = st.lists(
    st.one_of(
        st.sampled_from(list("\r\n\t\x00\x0b\x0c\x85\u2028\u2029<>&\"'=?_:;,@ ")),
        st.sampled_from(["=?utf-8?q?", "?=", "=0D=0A", "Bcc: x@example.com", "\ue000", "\ue0001\ue001"]),
        st.characters(),
    ),
    min_size=1,
    max_size=30,
).map("".join)
FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(name=nasty_text, subject_value=nasty_text)
def test_any_name_or_subject_gives_a_well_formed_message(name: str, subject_value: str) -> None:
    context = sample_context(customer_overrides={"first_name": name})
    context["campaign"]["name"] = subject_value
    templates = EmailTemplates(
        subject="x {{ campaign.name }} {{ customer.first_name }}", html=TYPICAL_EMAIL["html"]
    )
    rendered = render_email(templates, context)
    built = build_email(
        rendered,
        sender=Mailbox("news@shop.example.com", name),
        recipient=Mailbox("ann@example.com", name),
        ledger_key=name,
        message_id_domain="shop.example.com",
        unsubscribe_url="https://news.example.com/u/tok",
        date=dt.datetime(2026, 3, 14, tzinfo=dt.UTC),
    )
    head, _, _ = built.raw.partition(b"\r\n\r\n")
    assert head.isascii()
    assert all(len(line) <= 998 for line in built.raw.split(b"\r\n"))
    assert b"\n" not in built.raw.replace(b"\r\n", b"") and b"\r" not in built.raw.replace(b"\r\n", b"")
    message = email.message_from_bytes(built.raw, policy=email.policy.default)
    names = [key.lower() for key in message]
    assert sorted(names) == sorted(
        [
            "from",
            "to",
            "subject",
            "date",
            "message-id",
            "list-unsubscribe",
            "list-unsubscribe-post",
            "mime-version",
            "content-type",
        ]
    )
    assert message["Subject"] == rendered.subject
    assert not message.defects
    assert [part.get_content_type() for part in message.iter_parts()] == ["text/plain", "text/html"]


@FAST
@given(name=nasty_text, explanation=nasty_text)
def test_markers_never_change_the_html_for_any_data(name: str, explanation: str) -> None:
    context = sample_context(customer_overrides={"first_name": name})
    context["recommendations"][0]["explanation"] = explanation
    source = (
        TYPICAL_EMAIL["html"]
        + '{% set h %}{{ customer.first_name }}{% endset %}<p title="{{ h }}">{{ h }}</p>'
    )
    results = []
    for markers in (True, False):
        budget = RenderBudget(RenderLimits(), time.monotonic() + 10, context)
        result = render_part("html", source, context, budget=budget, markers=markers)
        assert isinstance(result, RenderedHtml)
        results.append(result.html)
    assert results[0] == results[1]
