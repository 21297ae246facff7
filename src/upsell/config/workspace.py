"""Read the workspace's optional config.yaml, naming file, line and key in every problem.

The file holds one section per part of the engine that can be tuned without code (S19):
``opportunities:``, whose keys are `upsell.domain.opportunities.Policy`'s fields, ``metrics:``,
metrics.md's settings (`upsell.domain.metrics.MetricSettings`), ``report:`` (its ``locale``) and
``schedule:`` (when `upsell serve` runs the daily job; none by default) and ``in_app:`` (the
widget's origins, user tokens and polling; docs/in-app.md). A missing file, an empty
file and an empty section all mean the defaults. Unknown sections and keys, values of the wrong type and values out of range
raise `ConfigError` listing every problem at once, like catalog.yaml's loader, whose YAML and
line-finding helpers this module shares.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, fields, replace
from datetime import time
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from upsell.config._yaml import At, Reader, is_int, line_of, parse_yaml, read_utf8, show
from upsell.domain.messages import known_locale
from upsell.domain.metrics import CHURN_AT, MetricSettings
from upsell.domain.opportunities import Policy
from upsell.errors import ConfigError

CONFIG_FILE = "config.yaml"

#: The sections config.yaml may hold, in the order the docs list them.
SECTIONS = ("opportunities", "metrics", "report", "schedule", "in_app")

#: metrics' keys: MetricSettings' fields.
METRIC_KEYS = tuple(f.name for f in fields(MetricSettings))

#: opportunities' keys: Policy's fields, in declaration order.
POLICY_KEYS = tuple(f.name for f in fields(Policy))


#: schedule's keys.
SCHEDULE_KEYS = ("time", "timezone", "enabled")
_TIME = re.compile(r"^([01]\d|2[0-3]):[0-5]\d(:[0-5]\d)?$")


@dataclass(frozen=True)
class Schedule:
    """When `upsell serve` runs the daily job: every day at `at` (a time of day) in `timezone`
    (IANA), with as-of that day; `enabled` false keeps the section but runs nothing."""

    at: time
    timezone: str = "UTC"
    enabled: bool = True

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


#: in_app's keys.
IN_APP_KEYS = ("origins", "require_user_token", "poll_seconds", "demo_page")
_ORIGIN = re.compile(r"^https?://[^/?#\s]+$")


@dataclass(frozen=True)
class InAppSettings:
    """The widget's side of `upsell serve` (docs/in-app.md): the web origins allowed to call the
    messages API from a browser (CORS; ``https://app.example.com``, no path), whether every call
    must carry a signed user token, and how often the widget asks for messages. `demo_page`
    (written by ``upsell init --demo``) serves the demo host page at ``/demo``."""

    origins: tuple[str, ...] = ()
    require_user_token: bool = False
    poll_seconds: int = 60
    demo_page: bool = False


@dataclass(frozen=True)
class WorkspaceConfig:
    """A workspace's tunable settings; every section defaults to its built-in values."""

    opportunities: Policy = field(default_factory=Policy)
    metrics: MetricSettings = field(default_factory=MetricSettings)
    #: The locale the report formats money and numbers for (``report: {locale: de}``).
    locale: str = "en"
    #: The daily job's schedule (``schedule: {time: "06:00"}``); None: the server runs no job.
    schedule: Schedule | None = None
    #: The widget's origins, user tokens and polling (``in_app: {origins: [...]}``).
    in_app: InAppSettings = field(default_factory=InAppSettings)


def load_config(folder: str | os.PathLike[str]) -> WorkspaceConfig:
    """Read ``config.yaml`` in the workspace folder; the defaults when there is none."""
    path = Path(folder) / CONFIG_FILE
    file = os.fspath(path)
    if not path.exists():
        return WorkspaceConfig()
    text = read_utf8(file, "the configuration", ConfigError)
    return parse_config(text, file)


def parse_config(text: str, file: str = CONFIG_FILE) -> WorkspaceConfig:
    """Check configuration YAML given as text; `file` is only used to name it in problems."""
    root = parse_yaml(text, file, ConfigError)
    if root is None:
        return WorkspaceConfig()
    reader = Reader(file)
    top = reader.fields(root, At("", 1), "the configuration", (), SECTIONS)
    policy = Policy()
    if top is not None and "opportunities" in top:
        policy = _policy(reader, *top["opportunities"])
    ranges = [
        replace(
            p,
            key=f"opportunities.{p.key}",
            file=file,
            line=line_of(root, f"opportunities.{p.key}"),
        )
        for p in policy.check()
    ]
    metrics = MetricSettings()
    if top is not None and "metrics" in top:
        metrics = _metrics(reader, *top["metrics"])
    locale = "en"
    if top is not None and "report" in top:
        locale = _locale(reader, *top["report"])
    schedule = _schedule(reader, *top["schedule"]) if top and "schedule" in top else None
    in_app = _in_app(reader, *top["in_app"]) if top and "in_app" in top else InAppSettings()
    problems = [*reader.errors, *ranges]
    if problems:
        raise ConfigError(sorted(problems, key=lambda p: p.line or 0))
    return WorkspaceConfig(
        opportunities=policy, metrics=metrics, locale=locale, schedule=schedule, in_app=in_app
    )


def _in_app(reader: Reader, value: Any, at: At) -> InAppSettings:
    """The in_app section: ``origins`` (a list of http(s) origins), ``require_user_token``,
    ``poll_seconds`` (10 to 3600)."""
    found = reader.fields(value, at, "in_app", (), IN_APP_KEYS) if value is not None else None
    if not found:
        return InAppSettings()
    origins: list[str] = []
    if "origins" in found:
        for v, item_at in reader.items(*found["origins"], "origins"):
            if isinstance(v, str) and _ORIGIN.match(v.strip().rstrip("/")):
                origins.append(v.strip().rstrip("/").lower())
            else:
                reader.fail(
                    item_at.key,
                    item_at.line,
                    "must be a web origin such as https://app.example.com (scheme and host, "
                    f"no path), got {show(v)}",
                )
    required = reader.flag(*found["require_user_token"]) if "require_user_token" in found else False
    poll = 60
    if "poll_seconds" in found:
        v, key_at = found["poll_seconds"]
        n = reader.count(v, key_at)
        if n is not None and not 10 <= n <= 3600:
            reader.fail(key_at.key, key_at.line, f"must be from 10 to 3600 seconds, got {n}")
        elif n is not None:
            poll = n
    demo = reader.flag(*found["demo_page"]) if "demo_page" in found else False
    return InAppSettings(
        origins=tuple(origins), require_user_token=required, poll_seconds=poll, demo_page=demo
    )


def _schedule(reader: Reader, value: Any, at: At) -> Schedule | None:
    """The schedule section: ``time`` (HH:MM or HH:MM:SS, required), ``timezone``, ``enabled``."""
    if value is None:
        return None
    found = reader.fields(value, at, "schedule", ("time",), SCHEDULE_KEYS)
    if found is None or "time" not in found:
        return None
    text, time_at = found["time"]
    when = None
    if isinstance(text, str) and _TIME.match(text):
        when = time.fromisoformat(text)
    else:
        reader.fail(
            time_at.key,
            time_at.line,
            f'must be a time of day HH:MM in quotes, such as "06:00", got {show(text)}',
        )
    zone = "UTC"
    if "timezone" in found:
        name, zone_at = found["timezone"]
        try:
            zone = str(ZoneInfo(name).key) if isinstance(name, str) and name else ""
        except (ZoneInfoNotFoundError, ValueError):
            zone = ""
        if not zone:
            reader.fail(
                zone_at.key,
                zone_at.line,
                f"must be a time zone such as UTC or Europe/Paris, got {show(name)}",
            )
    enabled = reader.flag(*found["enabled"]) if "enabled" in found else True
    if when is None or not zone:
        return None
    return Schedule(at=when, timezone=zone, enabled=enabled)


def _locale(reader: Reader, value: Any, at: At) -> str:
    """The report section: ``locale``, a CLDR locale (en, de, nl_BE, ...)."""
    found = reader.fields(value, at, "report", (), ("locale",)) if value is not None else None
    if not found or "locale" not in found:
        return "en"
    text, key_at = found["locale"]
    if not isinstance(text, str) or not known_locale(text):
        reader.fail(
            key_at.key, key_at.line, f"must be a locale such as en, de or nl_BE, got {show(text)}"
        )
        return "en"
    return text.replace("-", "_")


def _metrics(reader: Reader, value: Any, at: At) -> MetricSettings:
    """The metrics section (metrics.md's settings)."""
    if value is None:
        return MetricSettings()
    found = reader.fields(value, at, "metrics", (), METRIC_KEYS)
    if found is None:
        return MetricSettings()
    values: dict[str, Any] = {}
    for name, (v, key_at) in found.items():
        if name == "reactivation_window_days":
            values[name] = None if v is None else reader.count(v, key_at)
        elif name == "churn_at":
            values[name] = reader.choice(v, key_at, CHURN_AT) or "cancel"
        elif name == "usage_in_mrr":
            if reader.flag(v, key_at):
                reader.fail(
                    key_at.key,
                    key_at.line,
                    "true is not supported yet: pay-as-you-go usage is never MRR",
                )
        elif name == "gross_margin":
            margin = _number(reader, v, key_at)
            if margin is not None and not 0 < margin <= 1:
                reader.fail(key_at.key, key_at.line, f"must be above 0 and at most 1, got {margin}")
            elif margin is not None:
                values[name] = margin
        elif name == "attribution_days":
            days = reader.count(v, key_at)
            if days is not None:
                values[name] = days
    return MetricSettings(**values)


def _policy(reader: Reader, value: Any, at: At) -> Policy:
    """The opportunities section: each key read as the type of Policy's default for it.

    Keys whose value has the wrong type keep their default here (the caller raises for them), so
    that the ranges of the others can still be checked and every problem reported at once.
    """
    if value is None:
        return Policy()
    found = reader.fields(value, at, "opportunities", (), POLICY_KEYS)
    if found is None:
        return Policy()
    defaults = Policy()
    values: dict[str, Any] = {}
    for name, (v, key_at) in found.items():
        default = getattr(defaults, name)
        read: bool | int | float | Decimal | None
        if isinstance(default, bool):
            read = reader.flag(v, key_at)
        elif isinstance(default, int):
            read = reader.count(v, key_at)
        elif isinstance(default, Decimal):
            read = reader.amount(v, key_at)
        else:
            read = _number(reader, v, key_at)
        if read is not None:
            values[name] = read
    return Policy(**values)


def _number(reader: Reader, value: Any, at: At) -> float | None:
    if is_int(value) or isinstance(value, float):
        return float(value)
    reader.fail(at.key, at.line, f"must be a number, got {show(value)}")
    return None
