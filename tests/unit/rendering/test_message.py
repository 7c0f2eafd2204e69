"""The MIME message: structure, encodings, headers, links, pixel, text part, caching."""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import re
from email.message import EmailMessage

import pytest

from campaigns.rendering import (
    BuiltEmail,
    EmailTemplates,
    Mailbox,
    RenderedEmail,
    Tracking,
    build_email,
    message_id,
    render_email,
)
from campaigns.rendering.body_plan import _cached_plan, markers_are_inert
from tests.unit.rendering.sample_context import TYPICAL_EMAIL, sample_context

SENDER = Mailbox("news@shop.example.com", "Example Shop")
UNSUBSCRIBE = "https://news.example.com/u/tok123"
PREFERENCES = "https://news.example.com/prefs/tok123"
DATE = dt.datetime(2026, 3, 14, 9, 30, tzinfo=dt.UTC)


def rewrite(url: str, index: int) -> str:
    return f"https://t.example.com/c/{index}"


def rendered(**overrides: object) -> RenderedEmail:
    templates = EmailTemplates(**{**TYPICAL_EMAIL, **overrides})  # type: ignore[arg-type]
    return render_email(templates, sample_context())


def built(message: RenderedEmail | None = None, **options: object) -> BuiltEmail:
    arguments: dict[str, object] = {
        "sender": SENDER,
        "recipient": Mailbox("ann@example.com", "Ann Example"),
        "ledger_key": "run-7:variant-A:customer-42:email",
        "message_id_domain": "shop.example.com",
        "unsubscribe_url": UNSUBSCRIBE,
        "unsubscribe_mailto": "unsubscribe+tok123@news.example.com",
        "tracking": Tracking(
            rewrite_link=rewrite,
            open_pixel_url="https://t.example.com/o/abc.gif",
            utm={"source": "reachly", "medium": "email", "campaign": "spring"},
            untracked_urls=[PREFERENCES],
        ),
        "date": DATE,
    }
    arguments.update(options)
    return build_email(message or rendered(), **arguments)  # type: ignore[arg-type]


def parse(raw: bytes) -> EmailMessage:
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


# ---------------------------------------------------------------------------------------
# Structure and encodings


def test_the_message_is_multipart_alternative_with_quoted_printable_parts() -> None:
    result = built()
    message = parse(result.raw)
    assert message.get_content_type() == "multipart/alternative"
    assert not message.defects
    text_part, html_part = message.iter_parts()
    for part, subtype, content in ((text_part, "plain", result.text), (html_part, "html", result.html)):
        assert part.get_content_type() == f"text/{subtype}"
        assert part.get_content_charset() == "utf-8"
        assert part["Content-Transfer-Encoding"] == "quoted-printable"
        assert part.get_content().replace("\r\n", "\n") == content
        assert not part.defects
    assert message["MIME-Version"] == "1.0"


def test_every_line_ends_in_crlf_and_none_is_longer_than_998_octets() -> None:
    raw = built().raw
    assert b"\n" not in raw.replace(b"\r\n", b"")
    assert b"\r" not in raw.replace(b"\r\n", b"")
    lines = raw.split(b"\r\n")
    assert max(len(line) for line in lines) <= 998
    body = raw.split(b"\r\n\r\n", 1)[1]
    assert max(len(line) for line in body.split(b"\r\n")) <= 76  # quoted-printable
    assert raw.isascii()


def test_the_same_ledger_row_gives_the_same_message_byte_for_byte() -> None:
    first, second = built(), built()
    assert first.raw == second.raw
    assert first.message_id == message_id("run-7:variant-A:customer-42:email", "shop.example.com")
    other = built(ledger_key="run-7:variant-A:customer-43:email")
    assert other.message_id != first.message_id
    assert re.fullmatch(r"<[0-9a-f]{40}@shop\.example\.com>", first.message_id)
    assert parse(first.raw)["Message-ID"] == first.message_id


def test_headers_and_rfc_8058_unsubscribe() -> None:
    message = parse(built().raw)
    assert message["Subject"] == "Ann, 4 picks for you"
    assert message["From"] == "Example Shop <news@shop.example.com>"
    assert message["To"] == "Ann Example <ann@example.com>"
    assert message["Date"] == "Sat, 14 Mar 2026 09:30:00 +0000"
    assert message["List-Unsubscribe"] == (f"<mailto:unsubscribe+tok123@news.example.com>, <{UNSUBSCRIBE}>")
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    with pytest.raises(ValueError, match="https"):
        built(unsubscribe_url="http://news.example.com/u/tok123")


def test_development_sites_on_http_get_a_plain_list_unsubscribe_without_one_click() -> None:
    insecure = "http://localhost:8000/t/u/tok123/"
    message = parse(built(unsubscribe_url=insecure, require_https=False).raw)
    assert f"<{insecure}>" in message["List-Unsubscribe"]
    assert message["List-Unsubscribe-Post"] is None  # RFC 8058 one-click is for https only
    with pytest.raises(ValueError, match="https"):
        built(unsubscribe_url="javascript:alert(1)", require_https=False)


def test_non_ascii_names_subjects_and_domains_are_encoded() -> None:
    subject = "Ton récap ✨ — עברית"
    result = built(
        rendered(subject=subject),
        recipient=Mailbox("zoë@example.com".replace("ë", "e"), "Zoë Ñandú"),
        sender=Mailbox("news@bücher.example", "Bücher"),
    )
    head = result.raw.split(b"\r\n\r\n", 1)[0]
    assert head.isascii()
    message = parse(result.raw)
    assert message["Subject"] == subject
    assert message["To"] == "Zoë Ñandú <zoe@example.com>"
    assert message["From"] == "Bücher <news@xn--bcher-kva.example>"
    with pytest.raises(ValueError, match="SMTPUTF8"):
        built(recipient=Mailbox("zoë@example.com"))


@pytest.mark.parametrize(
    "subject",
    [
        "Hi\r\nBcc: victim@example.com",
        "Hi\nBcc: victim@example.com",
        "Hi\rBcc: victim@example.com",
        "Hi\u2028Bcc: victim@example.com",
        "=?utf-8?q?Hi=0D=0ABcc:_victim@example.com?=",
        "=?utf-8?b?SGkNCkJjYzogdmljdGltQGV4YW1wbGUuY29t?=",
        "x" * 900 + "\r\nBcc: victim@example.com",
    ],
)
def test_header_injection_through_the_subject_is_impossible(subject: str) -> None:
    context = sample_context()
    context["campaign"]["name"] = subject
    message_ = render_email(EmailTemplates(subject="{{ campaign.name }}", html="<p>x</p>"), context)
    raw = built(message_).raw
    message = parse(raw)
    assert message["Bcc"] is None
    assert [name.lower() for name in message].count("subject") == 1
    assert "\n" not in message["Subject"] and "\r" not in message["Subject"]
    assert message["Subject"].endswith(
        subject[-20:].replace("\r", " ").replace("\n", " ").replace("\u2028", " ").strip()
    )
    assert max(len(line) for line in raw.split(b"\r\n")) <= 998


def test_header_injection_through_names_and_extra_headers_is_impossible() -> None:
    raw = built(
        recipient=Mailbox("ann@example.com", 'Ann"\r\nBcc: victim@example.com'),
        headers={"X-Campaign": "spring\r\nBcc: victim@example.com"},
    ).raw
    message = parse(raw)
    assert message["Bcc"] is None
    assert message["X-Campaign"] == "spring Bcc: victim@example.com"
    for bad in ({"Bcc": "x@example.com"}, {"X-Bad Name": "x"}, {"Subject": "again"}):
        with pytest.raises(ValueError, match="extra header"):
            built(headers=bad)
    with pytest.raises(ValueError):
        built(recipient=Mailbox("ann@example.com\r\nBcc: victim@example.com"))


# ---------------------------------------------------------------------------------------
# Body: CSS, preheader, links, pixel, text


def test_css_is_inlined_and_media_queries_kept() -> None:
    html = built().html
    assert re.search(r'<td class="content" style="[^"]*font-size: 16px', html)
    assert "@media only screen and (max-width: 620px)" in html
    assert ".product-name {" not in html  # the inlined rules are gone from <style>


def test_the_preheader_is_hidden_text_at_the_top_of_the_body() -> None:
    result = built()
    body_start = result.html.index("<body")
    hidden = re.search(
        r'<div style="display:none[^"]*" aria-hidden="true">You have 12,500 points', result.html
    )
    assert hidden and hidden.start() > body_start
    assert "You have 12,500 points" not in result.text
    assert "aria-hidden" not in built(rendered(preheader=None)).html


def test_links_are_tracked_in_order_with_utm_and_the_rest_left_alone() -> None:
    html = """<p><a href="https://shop.example.com/new">new</a>
<a href="https://shop.example.com/p?utm_source=hand&amp;x=1#top">kept utm</a>
<a href="mailto:help@shop.example.com">mail</a> <a href="tel:+441234">call</a>
<a href="#section">jump</a> <a href="/relative">rel</a>
<a href="{{ links.unsubscribe_url }}">unsubscribe</a> <a href="{{ links.preferences_url }}">prefs</a>
<a href="java&#x09;script:alert(1)">bad</a> <a href=" JavaScript:alert(1)">bad2</a>
<!-- <a href="https://outlook.example.com/vml">vml</a> -->
<a href="{{ recommendations[0].url }}">{{ recommendations[0].name }}</a></p>"""
    seen: list[tuple[str, int]] = []

    def record(url: str, index: int) -> str:
        seen.append((url, index))
        return f"https://t.example.com/c/{index}"

    tracking = Tracking(
        rewrite_link=record, utm={"source": "reachly", "medium": "email"}, untracked_urls=[PREFERENCES]
    )
    result = built(rendered(html=html), tracking=tracking)
    assert seen == [
        ("https://shop.example.com/new?utm_source=reachly&utm_medium=email", 0),
        ("https://shop.example.com/p?utm_source=hand&x=1&utm_medium=email#top", 1),
        ("https://shop.example.com/p/sku-1000?utm_source=reachly&utm_medium=email", 2),
    ]
    assert result.links == [url for url, _ in seen]
    out = result.html
    assert '<a href="https://t.example.com/c/0">new</a>' in out
    assert 'href="mailto:help@shop.example.com"' in out and 'href="tel:+441234"' in out
    assert 'href="#section"' in out and 'href="/relative"' in out
    assert f'href="{UNSUBSCRIBE}"' in out and f'href="{PREFERENCES}"' in out
    assert "javascript" not in out.lower() and "<a>bad</a>" in out and "<a>bad2</a>" in out
    assert 'href="https://outlook.example.com/vml"' in out
    assert '<a href="https://t.example.com/c/2">Linen Shirt</a>' in out
    assert "Linen Shirt (https://t.example.com/c/2)" in result.text
    assert f"unsubscribe ({UNSUBSCRIBE})" in result.text


def test_the_open_pixel_is_the_last_thing_in_the_body() -> None:
    html = built().html
    pixel = '<img src="https://t.example.com/o/abc.gif" width="1" height="1" alt=""'
    assert pixel in html
    assert html.index(pixel) < html.index("</body>")
    assert html[html.index(pixel) :].count("<table") == 0
    assert "abc.gif" not in built(tracking=Tracking()).html


def test_the_text_part_is_written_from_the_html_when_not_given() -> None:
    text = built().text
    assert text.startswith(
        "Example Shop Ltd\n\nHi Ann\n======\n\nNew in this week: see what's new (https://t.example.com/c/0)."
    )
    assert "Picked for you\n--------------" in text
    assert "Linen Shirt (https://t.example.com/c/1)\n\n€49.90\n\nBecause you bought chinos" in text
    assert text.count("https://t.example.com/c/1") == 1  # picture and name link: once
    assert "<" not in text and "{" not in text
    assert "1 High Street\nLondon EC1A 1AA\nUnited Kingdom" in text


def test_a_written_text_part_is_used_and_its_links_tracked() -> None:
    text = "Hi {{ customer.first_name }},\n\nsee https://shop.example.com/new.\nBye: {{ links.unsubscribe_url }}\n"
    result = built(rendered(text=text))
    assert result.text == (
        "Hi Ann,\n\nsee https://t.example.com/c/0.\nBye: https://news.example.com/u/tok123\n"
    )


def test_the_body_plan_is_made_once_per_skeleton() -> None:
    _cached_plan.cache_clear()
    first = built()
    other_customer = sample_context(customer_overrides={"first_name": "Bob"})
    other_customer["recommendations"][0]["name"] = "Rain Jacket <XL>"
    second_rendered = render_email(EmailTemplates(**TYPICAL_EMAIL), other_customer)  # type: ignore[arg-type]
    second = built(second_rendered)
    info = _cached_plan.cache_info()
    assert (info.misses, info.hits) == (1, 1)
    assert "Hi Ann" in first.html and "Hi Bob" in second.html
    assert (
        "Rain Jacket &lt;XL&gt;" in second.html
        and "Rain Jacket <XL> (https://t.example.com/c/1)" in second.text
    )


def test_values_that_style_the_page_are_inlined_per_message() -> None:
    html = (
        "<style>.vip { color: gold; } p { margin: 0; }</style>"
        '<p class="{{ customer.attributes.favourite_category|lower }}">Hi</p>'
        '<p style="font-size: {{ customer.attributes.shoe_size }}px">x</p>'
    )
    message_ = rendered(html=html)
    assert not markers_are_inert(message_.html_part.skeleton)
    out = built(message_).html
    assert '<p class="apparel" style="margin: 0;">Hi</p>' in out
    assert '<p style="margin: 0;font-size: 38px">x</p>' in out


def test_message_parses_back_into_an_email_message() -> None:
    result = built()
    message = result.message()
    assert message["Message-ID"] == result.message_id
    assert message.get_body(("plain",)).get_content().replace("\r\n", "\n") == result.text  # type: ignore[union-attr]
    assert result.headers["Subject"] == "Ann, 4 picks for you"
