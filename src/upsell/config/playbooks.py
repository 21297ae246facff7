"""Read the workspace's playbooks.yaml into `Playbooks`, naming file, line and key in every problem.

A workspace without a ``playbooks.yaml`` uses the built-in `DEFAULT_PLAYBOOKS`. Every section is
optional: an empty file means no playbooks with the default guardrails and settings. Given
``settings.contact_cost`` and ``guardrails.reach_days`` replace the defaults only for the channels
they name; given ``guardrails.caps`` replace the default caps entirely.

A trigger maps a fact (`upsell.domain.playbooks.FACTS`) to a test:

- a scalar: ``equals`` that value (for a fact that is a set, such as ``reasons``: ``any_of`` it);
- a list of text: ``any_of`` those values;
- a mapping with keys among ``at_least, at_most, any_of, none_of, equals``: one condition per key
  (``any_of`` and ``none_of`` take a list or a single value, kept as a tuple of text).

Reading follows catalog.yaml's loader, whose YAML and line-finding helpers it shares: the first
pass (`upsell.config._playbooks_reader`) checks shapes and types (unknown and missing keys, ids,
template names, dates, numbers); then `Playbooks.check` and the checks here find what no single
key shows (unknown channels, placements and promotions, deadlines shorter than a channel's reach,
promotion calendars, reason codes no rule gives). Every error of both passes raises at once as
`PlaybooksError`, in file order. An entry the first pass had to drop does not shift the keys of the
second pass, and a second-pass problem about a key the first pass already reported is left out.

With a `Catalog`, trigger values it does not know are errors too: ``plan``, ``item_id`` and
``from_item_id`` values that are not its item ids, ``signals`` that are not its named signals.
``industry`` values no case study has are only warnings: `playbook_warnings` returns them, since
a playbook may well target an industry without social proof.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from upsell.config._playbooks_reader import PlaybooksReader
from upsell.config._yaml import INDEX, line_of, parse_yaml, read_utf8
from upsell.domain.catalog import Catalog
from upsell.domain.offers import CHANNELS, PLACEMENTS
from upsell.domain.opportunities import REASON_CODES
from upsell.domain.playbooks import Playbooks, Value
from upsell.errors import PlaybooksError, Problem

PLAYBOOKS_FILE = "playbooks.yaml"
#: The built-in playbooks, used by a workspace without a playbooks.yaml of its own.
DEFAULT_PLAYBOOKS: Path = Path(__file__).parent.parent / "defaults" / "playbooks.yaml"

#: Trigger facts whose values are catalog item ids.
ITEM_FACTS = ("plan", "item_id", "from_item_id")


@dataclass(frozen=True)
class LoadedPlaybooks:
    """Checked playbooks and where they came from; `default` when the built-in file was used."""

    playbooks: Playbooks
    file: str
    default: bool


def load_playbooks(
    folder: str | os.PathLike[str],
    *,
    catalog: Catalog | None = None,
    channels: tuple[str, ...] = CHANNELS,
) -> LoadedPlaybooks:
    """Read ``playbooks.yaml`` in the workspace folder, or the built-in default when there is none.

    Raises `PlaybooksError` listing every problem; see `parse_playbooks` for `catalog` and
    `channels`.
    """
    path = Path(folder) / PLAYBOOKS_FILE
    default = not path.exists()
    file = os.fspath(DEFAULT_PLAYBOOKS if default else path)
    text = read_utf8(file, "the playbooks", PlaybooksError)
    return LoadedPlaybooks(
        playbooks=parse_playbooks(text, file, catalog=catalog, channels=channels),
        file=file,
        default=default,
    )


def parse_playbooks(
    text: str,
    file: str = PLAYBOOKS_FILE,
    *,
    catalog: Catalog | None = None,
    channels: tuple[str, ...] = CHANNELS,
) -> Playbooks:
    """Check playbooks YAML given as text; `file` is only used to name it in problems.

    `channels` are the channel names playbooks may use (a plugin's channel joins the built-ins);
    with a `catalog`, trigger values it does not know are errors as well. Raises `PlaybooksError`
    with every error, sorted by line; warnings never raise (see `playbook_warnings`).
    """
    root = _root(text, file)
    if root is None:
        return Playbooks(playbooks=())
    reader = PlaybooksReader(file)
    playbooks = reader.document(root)
    checked = [
        *playbooks.check(channels),
        *_check_channels(playbooks, channels),
        *_check_reasons(playbooks),
        *(p for p in _against_catalog(playbooks, catalog) if p.severity == "error"),
    ]
    located = []
    for problem in checked:
        key = _original_key(problem.key, reader.kept)
        if any(_related(key, e.key) for e in reader.errors):
            continue  # a consequence of an error the first pass reported
        located.append(replace(problem, key=key, file=file, line=line_of(root, key)))
    problems = [*reader.errors, *located]
    if problems:
        raise PlaybooksError(sorted(problems, key=lambda p: p.line or 0))
    return playbooks


def playbook_warnings(
    playbooks: Playbooks,
    catalog: Catalog,
    *,
    text: str | None = None,
    file: str = PLAYBOOKS_FILE,
) -> list[Problem]:
    """Warnings about checked `playbooks` against `catalog`: trigger industries no case study has.

    Give the playbooks' `text` to have each warning's line found; without it, lines are None.
    """
    warnings = [p for p in _against_catalog(playbooks, catalog) if p.severity == "warning"]
    root = _root(text, file) if text is not None else None
    return [
        replace(p, file=file, line=line_of(root, p.key) if root is not None else None)
        for p in warnings
    ]


def _root(text: str, file: str) -> Any:
    """The YAML document, or `PlaybooksError` naming where it is not YAML."""
    return parse_yaml(text, file, PlaybooksError)


# -- the second pass: what no single key shows ------------------------------------------------


def _check_channels(playbooks: Playbooks, channels: tuple[str, ...]) -> list[Problem]:
    """Channels and placements named by caps, contact costs and reach days."""
    known = tuple(dict.fromkeys((*CHANNELS, *channels)))
    listed = ", ".join(known)
    problems = []
    for k, cap in enumerate(playbooks.guardrails.caps):
        if cap.channel is not None and cap.channel not in known:
            problems.append(
                Problem(
                    f"unknown channel {cap.channel!r}; known: {listed}",
                    f"guardrails.caps[{k}].channel",
                )
            )
        allowed = PLACEMENTS.get(cap.channel or "")
        if cap.placement is not None and allowed is not None and cap.placement not in allowed:
            problems.append(
                Problem(
                    f"{cap.channel} has no placement {cap.placement!r}; choose {', '.join(allowed)}",
                    f"guardrails.caps[{k}].placement",
                )
            )
    for at, names in (
        ("settings.contact_cost", playbooks.settings.contact_cost),
        ("guardrails.reach_days", playbooks.guardrails.reach_days),
    ):
        for name in names:
            if name not in known:
                problems.append(
                    Problem(f"unknown channel {name!r}; known: {listed}", f"{at}.{name}")
                )
    return problems


def _check_reasons(playbooks: Playbooks) -> list[Problem]:
    """Reason codes in triggers that no opportunity rule gives."""
    problems = []
    for n, p in enumerate(playbooks.playbooks):
        for c in p.trigger:
            if c.fact != "reasons":
                continue
            for v in _texts(c.value):
                if v not in REASON_CODES:
                    hint = difflib.get_close_matches(v, REASON_CODES, n=1)
                    problems.append(
                        Problem(
                            f"unknown reason {v!r}"
                            + (f" (did you mean {hint[0]!r}?)" if hint else "")
                            + f"; known: {', '.join(REASON_CODES)}",
                            f"playbooks[{n}].trigger.reasons",
                        )
                    )
    return problems


def _against_catalog(playbooks: Playbooks, catalog: Catalog | None) -> list[Problem]:
    """Trigger values `catalog` does not know: errors for items and signals, warnings for
    industries without a case study."""
    if catalog is None:
        return []
    items = ", ".join(sorted(catalog.item_ids)) or "none"
    signals = ", ".join(catalog.signals) or "none are defined"
    industries = tuple(dict.fromkeys(c.industry for c in catalog.case_studies))
    problems = []
    for n, p in enumerate(playbooks.playbooks):
        for c in p.trigger:
            at = f"playbooks[{n}].trigger.{c.fact}"
            for v in _texts(c.value):
                if c.fact in ITEM_FACTS and catalog.item(v) is None:
                    problems.append(
                        Problem(f"{v!r} is not an item of the catalog; its items: {items}", at)
                    )
                elif c.fact == "signals" and v not in catalog.signals:
                    problems.append(
                        Problem(f"unknown signal {v!r}; the catalog's signals: {signals}", at)
                    )
                elif c.fact == "industry" and v not in industries:
                    have = ", ".join(industries) or "none"
                    problems.append(
                        Problem(
                            f"no case study of the catalog is in industry {v!r} "
                            f"(case studies' industries: {have})",
                            at,
                            severity="warning",
                        )
                    )
    return problems


def _texts(value: Value) -> tuple[str, ...]:
    if isinstance(value, tuple):
        return value
    return (value,) if isinstance(value, str) else ()


def _original_key(key: str, kept: Mapping[str, list[int]]) -> str:
    """`key` of the built value with the file's indices, through the reader's `kept` lists."""
    out, last = "", 0
    for m in INDEX.finditer(key):
        out += key[last : m.start()]
        index = int(m.group(1))
        indices = kept.get(out)
        if indices is not None and index < len(indices):
            index = indices[index]
        out += f"[{index}]"
        last = m.end()
    return out + key[last:]


def _related(key: str, other: str) -> bool:
    """Whether one key is the other or holds it (``a.b`` holds ``a.b.c`` and ``a.b[0]``)."""
    return _holds(key, other) or _holds(other, key)


def _holds(outer: str, inner: str) -> bool:
    return inner == outer or (outer != "" and inner.startswith((outer + ".", outer + "[")))
