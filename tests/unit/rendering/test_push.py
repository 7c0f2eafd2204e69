"""Push payloads: rendered, single-line, cut to what platforms show, tracked URL."""

from __future__ import annotations

import json

import pytest

from campaigns.rendering import PushLimits, PushTemplates, TemplateError, render_push
from campaigns.rendering.push import ELLIPSIS, truncate_text
from tests.unit.rendering.sample_context import sample_context


def test_a_push_payload_is_a_plain_dict_of_rendered_parts() -> None:
    destinations: list[tuple[str, int]] = []

    def rewrite(url: str, index: int) -> str:
        destinations.append((url, index))
        return f"https://t.example.com/p/{index}"

    payload = render_push(
        PushTemplates(
            title="{{ customer|first_name }}, your points",
            body="You have\n  {{ loyalty.points|number }} points. Top pick: {{ recommendations[0].name }}",
            url="{{ recommendations[0].url }}",
            icon="https://cdn.example.com/icon.png",
        ),
        sample_context(),
        rewrite_link=rewrite,
        utm={"source": "reachly", "medium": "push"},
    )
    assert payload == {
        "title": "Ann, your points",
        "body": "You have 12,500 points. Top pick: Linen Shirt",
        "url": "https://t.example.com/p/0",
        "icon": "https://cdn.example.com/icon.png",
    }
    assert destinations == [("https://shop.example.com/p/sku-1000?utm_source=reachly&utm_medium=push", 0)]
    assert json.loads(json.dumps(payload)) == payload


def test_title_and_body_are_cut_to_the_platform_limits() -> None:
    payload = render_push(
        PushTemplates(title="{{ 'Spring sale on everything you love ' * 5 }}", body="{{ 'word ' * 200 }}"),
        sample_context(),
    )
    assert len(payload["title"]) <= PushLimits().title_chars
    assert len(payload["body"]) <= PushLimits().body_chars
    assert payload["title"].endswith(ELLIPSIS) and payload["body"].endswith("word" + ELLIPSIS)
    assert "url" not in payload and "icon" not in payload


def test_the_whole_payload_fits_a_web_push_message() -> None:
    long_url = "https://shop.example.com/" + "a" * 2000
    payload = render_push(
        PushTemplates(title="t", body="{{ 'é' * 239 }}", url=long_url),
        sample_context(),
        push_limits=PushLimits(payload_bytes=2_300),
    )
    assert len(json.dumps(payload, ensure_ascii=False).encode("utf-8")) <= 2_300
    assert payload["url"] == long_url


@pytest.mark.parametrize(
    ("text", "limit", "expected"),
    [
        ("short", 10, "short"),
        ("Hello wonderful world", 12, "Hello" + ELLIPSIS),
        ("Supercalifragilistic", 10, "Supercali" + ELLIPSIS),
        ("Cafe\u0301s are open", 5, "Caf" + ELLIPSIS),  # the accent stays with its letter
        ("ab\U0001f44d\U0001f3fd cd", 4, "ab" + ELLIPSIS),  # no thumb without its skin tone
        ("ab\U0001f468\u200d\U0001f469\u200d\U0001f467 x", 6, "ab" + ELLIPSIS),  # family emoji whole
        (
            "a\U0001f1eb\U0001f1f7\U0001f1e9\U0001f1ea\U0001f1ee\U0001f1f9",
            5,
            "a\U0001f1eb\U0001f1f7" + ELLIPSIS,
        ),
    ],
)
def test_truncation_never_splits_what_a_reader_sees_as_one_character(
    text: str, limit: int, expected: str
) -> None:
    assert truncate_text(text, limit) == expected
    assert len(truncate_text(text, limit)) <= limit


def test_empty_or_invalid_parts_are_template_errors() -> None:
    with pytest.raises(TemplateError) as caught:
        render_push(PushTemplates(title="{{ '' }}", body="  "), sample_context())
    assert [p.field for p in caught.value.problems] == ["push_title", "push_body"]
    with pytest.raises(TemplateError) as caught:
        render_push(PushTemplates(title="t", body="b", url="javascript:alert(1)"), sample_context())
    assert (caught.value.field, caught.value.reason) == ("push_url", "invalid")
    with pytest.raises(TemplateError) as caught:
        render_push(PushTemplates(title="{{ nope }}", body="b"), sample_context())
    assert caught.value.reason == "undefined"
