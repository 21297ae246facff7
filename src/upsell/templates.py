"""Message templates: Jinja2 files filled with a decision's facts, in the account's language (S6, S17).

A template is a file ``<name>.j2`` that defines macros named after the parts of a message:
``subject``, ``body`` (plain text), ``cta`` (the call to action's label), optionally ``html`` (the
email's HTML part; by default the body's paragraphs and a button) and ``talking_points`` (one per
line, for a CSM task). The workspace's ``templates/`` folder comes first; upsell's own templates
(``upsell/defaults/templates``) fill in the names it does not have.

Every sentence is a gettext message (``{% trans %}`` or ``_()``). Translations are gettext ``.po``
files read with Babel: upsell's own for nl, it, nb, de and fr, with the workspace's
``locale/<language>.po`` on top. A message without a translation falls back to English;
`MessageTemplates.check` lists them, with the catalog's metric and feature names the messages use.
Filters format for the account's locale with CLDR: ``money``, ``number``, ``percent``, ``date``.

A template runs in Jinja2's sandbox, and its ``html`` part with autoescape on: what it prints
(``{{ account.name }}``) is escaped, its own markup is not. Each message is bounded (`Bounds`):
render time, the items of ``range`` and of a repetition (``'a' * n``), a power's size, and each
part's length. A template that fails for one account, or passes a bound, raises `RenderError`:
that account's offer is refused (``template_error``) and the others go out.
"""

from __future__ import annotations

import contextvars
import html
import io
import math
import re
import string
import sys
import time
import urllib.parse
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from functools import cached_property
from pathlib import Path
from typing import Any

from babel.dates import format_date
from babel.lists import format_list
from babel.messages.catalog import Catalog as PoCatalog
from babel.messages.extract import DEFAULT_KEYWORDS
from babel.messages.mofile import write_mo
from babel.messages.pofile import PoFileError, read_po
from babel.numbers import format_decimal, format_percent
from babel.support import Translations
from jinja2 import ChoiceLoader, FileSystemLoader, TemplateError, TemplateNotFound
from jinja2.ext import babel_extract
from jinja2.sandbox import SandboxedEnvironment, safe_range

from upsell.domain.calendar import iso
from upsell.domain.catalog import Catalog
from upsell.domain.messages import DEFAULT_LANGUAGE, LANGUAGES, language_of
from upsell.domain.money import Money, format_money
from upsell.domain.wording import feature_name, metric_name
from upsell.errors import Problem, TemplatesError, UpsellError

DEFAULTS = Path(__file__).parent / "defaults"
PARTS = ("subject", "body", "cta", "html", "talking_points")
TEMPLATES_FOLDER = "templates"
LOCALE_FOLDER = "locale"
_EXTENSIONS = ["jinja2.ext.i18n"]


@dataclass(frozen=True)
class Bounds:
    """What rendering one message may cost (docs/templates.md, "Bounds")."""

    seconds: float = 2.0
    #: Items of all the ``range()`` calls of one message together.
    range_items: int = 10_000
    #: Items a repetition (``'a' * n``, ``[x] * n``) may make.
    repeat_items: int = 100_000
    #: Bits of a power's result (``x ** y``).
    power_bits: int = 4_096
    #: Characters of each part (subject, body, cta, html, talking points).
    part_chars: int = 100_000
    #: Characters all the ``{{ ... }}`` of one message may print, counted as they are printed.
    printed_chars: int = 500_000


BOUNDS = Bounds()


class RenderError(UpsellError):
    """A template failed to render a message: its own error for these facts, or a `Bounds`."""

    def __init__(self, reason: str, template: str | None = None) -> None:
        super().__init__(reason if template is None else f"template {template}: {reason}")
        self.reason, self.template = reason, template


# The range() items and printed characters left to the message being rendered (each render sets
# its own; outside `render`, as in `environment(...).get_template(...)`, none is counted).
_range_left: contextvars.ContextVar[int | None] = contextvars.ContextVar("range_left", default=None)
_print_left: contextvars.ContextVar[int | None] = contextvars.ContextVar("print_left", default=None)


def _printed(value: Any) -> Any:
    """Jinja2's `finalize`: every ``{{ ... }}`` passes here before it is printed."""
    budget = _print_left.get()
    if budget is None:
        return value
    left = budget - len(str(value))
    if left < 0:
        raise RenderError(f"it prints more than {BOUNDS.printed_chars:,} characters")
    _print_left.set(left)
    return value


def _range(*args: int) -> range:
    budget = _range_left.get()
    if budget is None:
        return safe_range(*args)
    found = range(*args)
    left = budget - len(found)
    if left < 0:
        raise RenderError(f"range() over more than {BOUNDS.range_items:,} items in one message")
    _range_left.set(left)
    return found


class _Sandbox(SandboxedEnvironment):
    """Jinja2's sandbox, with repetitions and powers checked before they are computed."""

    intercepted_binops = frozenset({"*", "**"})

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "*":
            for items, n in ((left, right), (right, left)):
                if (
                    isinstance(items, (str, list, tuple))
                    and isinstance(n, int)
                    and len(items) * n > BOUNDS.repeat_items
                ):
                    raise RenderError(
                        f"a repetition of {len(items) * n:,} items (at most "
                        f"{BOUNDS.repeat_items:,})"
                    )
        if (
            operator == "**"
            and isinstance(left, int)
            and isinstance(right, int)
            and abs(left) > 1
            and right * math.log2(abs(left)) > BOUNDS.power_bits
        ):
            raise RenderError(f"a power of more than {BOUNDS.power_bits:,} bits")
        return super().call_binop(context, operator, left, right)


@contextmanager
def _bounded(name: str, *, timed: bool) -> Iterator[None]:
    """Render one message within `BOUNDS`: its range() items, what it prints, and, when `timed`,
    its time (a trace on the templates' own lines, every 256th line reading the clock; restored
    afterwards). Any other error becomes a `RenderError` naming the template."""
    deadline = time.monotonic() + BOUNDS.seconds
    token = _range_left.set(BOUNDS.range_items)
    printing = _print_left.set(BOUNDS.printed_chars)
    lines = 0

    def on_line(frame: Any, event: str, arg: Any) -> Any:
        nonlocal lines
        lines += 1
        if lines & 255 == 0 and time.monotonic() > deadline:
            raise RenderError(f"rendering took more than {BOUNDS.seconds:g} s")
        return on_line

    def on_call(frame: Any, event: str, arg: Any) -> Any:
        return on_line if frame.f_code.co_filename.endswith(".j2") else None

    previous = sys.gettrace()
    if timed:
        sys.settrace(on_call)
    try:
        yield
    except RenderError as e:
        raise RenderError(e.reason, name) from None
    except Exception as e:  # the template's own error for these facts
        raise RenderError(f"{type(e).__name__}: {e}", name) from None
    finally:
        sys.settrace(previous)
        _range_left.reset(token)
        _print_left.reset(printing)


@dataclass(frozen=True)
class Missing:
    """Messages a language has no translation for (shown in English instead)."""

    language: str
    messages: tuple[str, ...]
    terms: tuple[str, ...] = ()


@dataclass(frozen=True)
class TemplateReport:
    problems: list[Problem] = field(default_factory=list)
    missing: list[Missing] = field(default_factory=list)


class MessageTemplates:
    """The templates and translations of a workspace (None: upsell's own only)."""

    def __init__(self, workspace: Path | None = None) -> None:
        self.workspace = workspace
        folders = []
        if workspace is not None and (workspace / TEMPLATES_FOLDER).is_dir():
            folders.append(workspace / TEMPLATES_FOLDER)
        folders.append(DEFAULTS / TEMPLATES_FOLDER)
        self.folders = tuple(folders)
        #: The workspace has templates of its own: rendering is timed (upsell's own are trusted).
        self.own_templates = len(folders) > 1 and any(folders[0].glob("*.j2"))
        self._loader = ChoiceLoader([FileSystemLoader(f) for f in folders])
        self._envs: dict[tuple[str, bool], SandboxedEnvironment] = {}

    # -- translations ------------------------------------------------------------------------

    def _po_files(self, language: str) -> list[Path]:
        files = [DEFAULTS / LOCALE_FOLDER / f"{language}.po"]
        if self.workspace is not None:
            files.append(self.workspace / LOCALE_FOLDER / f"{language}.po")
        return [f for f in files if f.is_file()]

    def _catalogs(self, language: str) -> list[PoCatalog]:
        out = []
        for path in self._po_files(language):
            with path.open("rb") as f:
                out.append(read_po(f, locale=language, abort_invalid=True))
        return out

    @cached_property
    def languages(self) -> tuple[str, ...]:
        """English, upsell's languages, and any the workspace adds a .po file for."""
        found = set(LANGUAGES)
        if self.workspace is not None and (self.workspace / LOCALE_FOLDER).is_dir():
            found |= {p.stem for p in (self.workspace / LOCALE_FOLDER).glob("*.po")}
        return (DEFAULT_LANGUAGE, *sorted(found - {DEFAULT_LANGUAGE}))

    def _translations(self, language: str) -> Translations:
        """upsell's catalog with the workspace's on top. The first catalog read is the base, so
        that the language's plural rule (French: n > 1) is kept, not English's."""
        merged: Translations | None = None
        for catalog in self._catalogs(language):
            buf = io.BytesIO()
            write_mo(buf, catalog, use_fuzzy=False)
            buf.seek(0)
            loaded = Translations(fp=buf)
            if merged is None:
                merged = loaded
            else:
                merged.merge(loaded)
        return merged if merged is not None else Translations()

    def environment(self, locale: str, *, html: bool = False) -> SandboxedEnvironment:
        """A Jinja2 environment translating into `locale`'s language and formatting for it; for
        the ``html`` part, with autoescape on."""
        env = self._envs.get((locale, html))
        if env is not None:
            return env
        env = _Sandbox(
            loader=self._loader,
            extensions=_EXTENSIONS,
            autoescape=html,
            finalize=_printed,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        env.policies["ext.i18n.trimmed"] = True
        language = language_of(locale)
        env.install_gettext_translations(  # type: ignore[attr-defined]
            self._translations(language), newstyle=True
        )
        env.filters.update(
            money=lambda v, currency=None: _money(v, currency, locale),
            number=lambda v: _number(v, locale),
            percent=lambda v: format_percent(v, locale=locale),
            date=lambda v: format_date(v, format="long", locale=locale),
            list=lambda v: format_list(list(v), locale=locale) if v else "",
            t=env.globals["gettext"],
        )
        env.globals["range"] = _range
        self._envs[(locale, html)] = env
        return env

    # -- rendering ---------------------------------------------------------------------------

    def render(
        self,
        name: str,
        facts: Mapping[str, Any],
        *,
        locale: str,
        checkout_url: str,
        expires_at: datetime | None = None,
        html_part: bool = False,
    ) -> dict[str, Any]:
        """The message of data-contract.md's decision line: locale, subject, body, cta, cta_url,
        expires_at; ``html`` when `html_part`, ``talking_points`` when the template has them.
        RenderError when the template fails for these facts or passes a `Bounds`."""
        template = self.environment(locale).get_template(f"{name}.j2")
        parts: dict[str, str] = {}
        with _bounded(name, timed=self.own_templates):
            module = template.make_module(dict(facts))
            for part in PARTS:
                macro = getattr(module, part, None)
                if macro is not None and part != "html":
                    parts[part] = str(macro())
            if html_part and getattr(module, "html", None) is not None:
                escaping = self.environment(locale, html=True).get_template(f"{name}.j2")
                html_macro: Any = escaping.make_module(dict(facts)).html  # type: ignore[attr-defined]
                parts["html"] = str(html_macro())
            for part, text in parts.items():
                if len(text) > BOUNDS.part_chars:
                    raise RenderError(
                        f"its {part} has {len(text):,} characters (at most {BOUNDS.part_chars:,})"
                    )
        url = build_url(checkout_url, facts.get("checkout", {}))
        body = _tidy(parts.get("body", ""))
        message: dict[str, Any] = {
            "locale": locale,
            "subject": _line(parts.get("subject", "")),
            "body": body,
            "cta": _line(parts.get("cta", "")),
            "cta_url": url,
            "expires_at": None if expires_at is None else iso(expires_at),
        }
        if "talking_points" in parts:
            message["talking_points"] = [
                _line(line) for line in parts["talking_points"].splitlines() if line.strip()
            ]
        if html_part:
            message["html"] = parts.get("html") or default_html(
                message["subject"], body, message["cta"], url, locale
            )
        return message

    # -- checking ----------------------------------------------------------------------------

    def require(self, names: Iterable[str]) -> None:
        """TemplatesError for the first of `names` that is missing or is not valid Jinja2."""
        for name in sorted(names):
            try:
                self.environment(DEFAULT_LANGUAGE).get_template(f"{name}.j2")
            except TemplateError as e:
                raise TemplatesError(
                    f"template {name}: {type(e).__name__}: {e}; see `upsell playbooks check`"
                ) from None

    def names(self) -> list[str]:
        """Every template name available (files not starting with ``_``)."""
        return sorted(
            {p.stem for f in self.folders for p in f.glob("*.j2") if not p.name.startswith("_")}
        )

    def check(
        self, used: Iterable[str], catalog: Catalog | None = None, *, sample: Mapping[str, Any]
    ) -> TemplateReport:
        """Problems with the templates `used` (missing, not valid Jinja2, failing to render
        `sample` facts in any language, without subject or body) and with the .po files, and the
        messages each language lacks (including the catalog's metric and feature names)."""
        problems: list[Problem] = []
        for name in sorted(set(used)):
            try:
                self.environment(DEFAULT_LANGUAGE).get_template(f"{name}.j2")
            except TemplateNotFound:
                where = ", ".join(str(f) for f in self.folders)
                problems.append(Problem(f"no template {name}.j2 in {where}", f"template {name}"))
                continue
            except TemplateError as e:
                problems.append(_template_problem(name, e))
                continue
            for language in self.languages:
                try:
                    message = self.render(
                        name, sample, locale=language, checkout_url="https://x", html_part=True
                    )
                except (TemplateError, RenderError) as e:
                    problems.append(_template_problem(name, e, language))
                    break
                for part in ("subject", "body", "cta"):
                    if not message[part]:
                        problems.append(
                            Problem(
                                f"renders an empty {part}", f"template {name}", severity="warning"
                            )
                        )
                if language != DEFAULT_LANGUAGE:
                    continue
        messages = self._messages()
        terms = _catalog_terms(catalog) if catalog is not None else []
        missing = []
        for language in self.languages:
            if language == DEFAULT_LANGUAGE:
                continue
            try:
                catalogs = self._catalogs(language)
            except (PoFileError, ValueError, OSError) as e:
                problems.append(Problem(f"cannot read the translations: {e}", f"locale {language}"))
                continue
            have = _translated(catalogs)
            lacking = tuple(m for m in messages if m not in have)
            lacking_terms = tuple(t for t in terms if t not in have)
            if lacking or lacking_terms:
                missing.append(Missing(language, lacking, lacking_terms))
        return TemplateReport(problems, missing)

    def _messages(self) -> list[str]:
        """Every gettext message of every template, in file order, once."""
        out: dict[str, None] = {}
        options = {"extensions": ",".join(_EXTENSIONS), "trimmed": "true"}
        for folder in self.folders:
            for path in sorted(folder.glob("*.j2")):
                with path.open("rb") as f:
                    for _line, _func, message, _comments in babel_extract(
                        f, list(DEFAULT_KEYWORDS), [], options
                    ):
                        msgid = message[0] if isinstance(message, tuple) else message
                        if msgid:
                            out.setdefault(msgid, None)
        return list(out)


def _translated(catalogs: list[PoCatalog]) -> set[str]:
    have: set[str] = set()
    for catalog in catalogs:
        for m in catalog:
            if not m.id or m.fuzzy:
                continue
            msgid = m.id[0] if isinstance(m.id, tuple | list) else m.id
            strings = m.string if isinstance(m.string, tuple | list) else (m.string,)
            if all(strings):
                have.add(msgid)
    return have


def _catalog_terms(catalog: Catalog) -> list[str]:
    """The catalog's words that messages show: metric names and feature names."""
    features: set[str] = set()
    for p in catalog.plans:
        features |= p.features
    for a in catalog.add_ons:
        features |= a.features
    for x in catalog.products:
        features |= x.features
    return [
        *(metric_name(m) for m in sorted(catalog.metrics)),
        *(feature_name(f) for f in sorted(features)),
    ]


def _template_problem(name: str, e: Exception, language: str | None = None) -> Problem:
    line = getattr(e, "lineno", None)
    file = getattr(e, "filename", None) or f"{name}.j2"
    where = f" in {language}" if language else ""
    if isinstance(e, RenderError):
        return Problem(f"fails to render{where}: {e.reason}", f"template {name}", file=file)
    return Problem(f"{type(e).__name__}{where}: {e}", f"template {name}", file=file, line=line)


def build_url(template: str, fields: Mapping[str, Any]) -> str:
    """The checkout URL: `template`'s ``{placeholders}`` filled with URL-encoded values."""
    values = {k: urllib.parse.quote(str(v), safe="") for k, v in fields.items()}
    return string.Formatter().vformat(template, (), _Blank(values))


class _Blank(dict[str, str]):
    def __missing__(self, key: str) -> str:
        return ""


def default_html(subject: str, body: str, cta: str, url: str, locale: str) -> str:
    """A plain, mobile-friendly HTML part (S14's convenience): the body's paragraphs and one
    button."""
    paragraphs = "".join(
        f'<p style="margin:0 0 16px">{html.escape(p).replace(chr(10), "<br>")}</p>'
        for p in body.split("\n\n")
        if p.strip()
    )
    lang = html.escape(locale.replace("_", "-"))
    return (
        f'<!doctype html><html lang="{lang}"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(subject)}</title></head>"
        '<body style="font-family:sans-serif;font-size:16px;line-height:1.5;max-width:560px;'
        'margin:0 auto;padding:24px">'
        f"{paragraphs}"
        f'<p><a href="{html.escape(url, quote=True)}" style="display:inline-block;padding:12px 20px;'
        f'background:#1a56db;color:#fff;border-radius:6px;text-decoration:none">{html.escape(cta)}</a></p>'
        "</body></html>"
    )


def _line(text: str) -> str:
    """One line with single spaces; CLDR's no-break spaces (``1 400``, ``42 %``, ``:``) stay."""
    return _SPACES.sub(" ", text).strip()


_SPACES = re.compile(r"[ \t\r\n]+")


def _tidy(text: str) -> str:
    """Paragraphs separated by one blank line, each on one line with single spaces."""
    paragraphs = re.split(r"\n[ \t\r]*\n", text)
    return "\n\n".join(_line(p) for p in paragraphs if p.strip())


def _money(value: Any, currency: str | None, locale: str) -> str:
    if isinstance(value, Money):
        return format_money(value, locale)
    if value is None or currency is None:
        return ""
    return format_money(Money(Decimal(str(value)), currency), locale)


def _number(value: Any, locale: str) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    elif isinstance(value, float):
        value = round(value, 1)
    return str(format_decimal(value, locale=locale))


def sample_facts(kind: str = "upsell") -> dict[str, Any]:
    """Facts with every field set and one reason of every code, to render a template in a check."""
    price = Money(Decimal("99"), "EUR")
    reasons = [
        {"code": code, "metric": "seats", "metric_label": "seats", "feature": "automation",
         "feature_label": "Automation", "values": values, "text": code}
        for code, values in (
            ("near_limit", {"used": 23, "limit": 25, "days_to_limit": 9}),
            ("limit_reached", {"used": 25, "limit": 25, "times_30d": 3}),
            ("projected_need", {"needed": 31, "days": 60}),
            ("blocked_feature", {"attempts_30d": 4, "attempts_7d": 1}),
            ("trial_feature", {"uses_in_trial": 12}),
            ("break_even", {"bill": "175", "price": "125", "currency": "EUR", "units": 6}),
            ("upgrade_pattern", {"lift": 2.5, "upgrades": 40, "uses_30d": 12}),
            ("growing_usage", {"events_30d": 320, "events_prev_30d": 210}),
            ("co_adoption", {"confidence": 0.42, "lift": 1.8, "accounts": 56}),
            ("fits_signal", {"signal": "inbound_leads"}),
            ("feature_lost", {"uses_30d": 14}),
            ("over_limit", {"used": 23, "limit": 5}),
            ("value_received", {"active_users_30d": 18, "events_30d": 1400}),
            ("fits_usage", {"price": "29", "currency": "EUR"}),
            ("churn_risk", {}),
        )
    ]  # fmt: skip
    return {
        "account": {"id": "a-1", "name": "Acme", "industry": "ecommerce", "employees": 60},
        "kind": kind,
        "offer_id": f"{kind}:pro",
        "playbook": "sample",
        "placement": "modal",
        "variant": None,
        "item": {"id": "pro", "name": "Pro", "kind": "plan", "price": price},
        "from_item": {"id": "basic", "name": "Basic"},
        "delta": Money(Decimal("70"), "EUR"),
        "reasons": reasons,
        "gained": {"features": ["Automation"], "limits": []},
        "case_study": {"customer": "Acme Shop", "result": "cut fulfilment time by 30%"},
        "trial_days": 14,
        "discount_percent": 20.0,
        "discount_months": 3,
        "promotion": None,
        "deadline": date(2026, 6, 15),
        "checkout": {"account_id": "a-1", "item_id": "pro", "offer_id": f"{kind}:pro"},
    }
