"""A workspace's own templates: the html part escapes what it prints, and a template that fails or
would never end is one message's `RenderError` (issue 16, "Templates")."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from upsell.templates import BOUNDS, MessageTemplates, RenderError, sample_facts

PARTS = (
    "{% macro subject() %}Hi {{ account.name }}{% endmacro %}"
    "{% macro body() %}{{ account.name }} & co{% endmacro %}"
    "{% macro cta() %}Go{% endmacro %}"
)


def templates(tmp_path: Path, text: str) -> MessageTemplates:
    (tmp_path / "templates").mkdir(exist_ok=True)
    (tmp_path / "templates" / "mine.j2").write_text(PARTS + text)
    return MessageTemplates(tmp_path)


def render(t: MessageTemplates, **account: Any) -> dict[str, Any]:
    facts = sample_facts()
    facts = {**facts, "account": {**facts["account"], **account}}
    return t.render("mine", facts, locale="en", checkout_url="https://x", html_part=True)


def test_a_workspace_html_part_escapes_what_it_prints_not_its_own_markup(tmp_path: Path) -> None:
    t = templates(tmp_path, '{% macro html() %}<p class="x">{{ account.name }}</p>{% endmacro %}')
    message = render(t, name="<script>alert(1)</script>")
    assert message["html"] == '<p class="x">&lt;script&gt;alert(1)&lt;/script&gt;</p>'
    # The plain-text parts are text: nothing to escape there.
    assert message["subject"] == "Hi <script>alert(1)</script>"
    assert message["body"] == "<script>alert(1)</script> & co"


def test_a_template_that_fails_for_some_facts_raises_a_render_error_naming_it(
    tmp_path: Path,
) -> None:
    t = templates(
        tmp_path, "{% macro talking_points() %}{{ 1 // account.employees }}{% endmacro %}"
    )
    assert render(t, employees=2)["talking_points"] == ["0"]
    with pytest.raises(RenderError, match=r"^template mine: ZeroDivisionError: "):
        render(t, employees=0)


@pytest.mark.parametrize(
    ("body", "bound"),
    [
        ("{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}",
         "range"),
        ("{{ 'a' * 400000000 }}", "repetition of 400,000,000 items"),
        ("{{ [1] * 10 ** 9 }}", "repetition"),
        ("{{ 2 ** 10000000 }}", "power"),
        ("{% set s = 'x' * 90000 %}{% for a in s %}{% for b in s %}{% endfor %}{% endfor %}",
         "took more than"),
        ("{% for a in range(9000) %}{{ 'x' * 90000 }}{% endfor %}", "prints more than"),
        ("{{ 'x' * 90000 }}{{ 'y' * 20000 }}", "110,000 characters"),
    ],
)  # fmt: skip
def test_render_work_is_bounded(tmp_path: Path, body: str, bound: str) -> None:
    t = templates(tmp_path, "{% macro talking_points() %}" + body + "{% endmacro %}")
    start = time.monotonic()
    with pytest.raises(RenderError, match=bound):
        render(t)
    assert time.monotonic() - start < BOUNDS.seconds + 3


def test_playbooks_check_reports_a_template_that_fails_to_render(tmp_path: Path) -> None:
    t = templates(tmp_path, "{% macro talking_points() %}{{ 1 // 0 }}{% endmacro %}")
    problems = t.check(["mine"], sample=sample_facts()).problems
    assert [p.message for p in problems] == [
        "fails to render in en: ZeroDivisionError: integer division or modulo by zero"
    ]
