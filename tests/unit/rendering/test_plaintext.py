"""The text part written from HTML is readable."""

from __future__ import annotations

from campaigns.rendering.plaintext import html_to_text, text_plan


def test_structure_becomes_readable_text() -> None:
    html = """<html><head><title>T</title><style>p { color: red }</style></head><body>
<div style="display:none">preheader</div><span hidden>hidden</span>
<h1>Hello &amp; welcome</h1><h3>Small heading</h3>
<p>Some <b>bold</b>   text,<br>next line.</p>
<ul><li>one</li><li>two<ul><li>inner</li></ul></li></ul>
<ol><li>first<li>second</ol>
<table><tr><td>A</td><td>B</td></tr><tr><td>C</td></tr></table>
<hr><pre>  keep   spaces</pre>
<script>alert(1)</script><!-- a comment --><![if !mso]>shown<![endif]>
</body></html>"""
    assert html_to_text(html) == (
        "Hello & welcome\n===============\n\n"
        "Small heading\n\n"
        "Some bold text,\nnext line.\n\n"
        "* one\n* two\n  * inner\n\n"
        "1. first\n2. second\n\n"
        "A B\n\nC\n\n"
        "--------------------\n\n"
        "  keep   spaces\n\n"
        "shown\n"
    )


def test_links_read_label_then_url_and_only_once_for_image_and_name() -> None:
    html = (
        '<a href="https://shop.example.com/p/1"><img src="x.jpg" alt="Linen Shirt"></a>'
        '<p><a href="https://shop.example.com/p/1">Linen Shirt</a></p>'
        '<p><a href="https://shop.example.com/">https://shop.example.com/</a> '
        '<a href="mailto:help@example.com?subject=x">Write to us</a> '
        '<a href="mailto:help@example.com">help@example.com</a> '
        '<a href="#top">Back to top</a> <a href="https://x.example/i"><img src="i.png" alt="Logo"></a></p>'
    )
    assert html_to_text(html) == (
        "Linen Shirt (https://shop.example.com/p/1)\n\n"
        "https://shop.example.com/ Write to us (help@example.com) help@example.com Back to top "
        "Logo (https://x.example/i)\n"
    )


def test_a_plan_fills_values_links_and_underlines_per_message() -> None:
    plan = text_plan('<h1>Hi \ue0000\ue001</h1><p><a href="\ue0001\ue001?a=1&amp;b=2">\ue0002\ue001</a></p>')
    shown: list[str] = []

    def target(url: str) -> tuple[str, str]:
        shown.append(url)
        return "web", "https://t.example.com/c/0"

    text = plan.assemble(["Annabelle", "https://shop.example.com/p", "Rain  Jacket\n XL"], target)
    assert text == "Hi Annabelle\n============\n\nRain Jacket XL (https://t.example.com/c/0)\n"
    assert shown == ["https://shop.example.com/p?a=1&b=2"]
