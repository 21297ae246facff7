"""`upsell learn`, and the fitted answers the decision step reads (docs/learning.md).

`learn` takes every past decision whose attribution window has closed (treated and held out), what
followed it (converted, and whether the account churned), fits `upsell.domain.answers.Answers`
with `upsell.learning.answers.AnswersFitter`, and stores it with its out-of-sample evaluation.
`answers_for` is what a run uses: the newest stored fit, refitted first when it is older than
playbooks.yaml's ``settings.learning.refit_days``, and only once it rests on at least
``min_decisions`` decisions (before that, the prior decides, as in a new workspace).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from upsell.domain.answers import Answers, Learning, Outcome
from upsell.domain.calendar import day_start
from upsell.domain.events import RESPONSE_EVENTS
from upsell.engine.movements import materialised_changes, mrr_rows
from upsell.engine.outcomes import contact_churn, offer_outcomes, response_offer_ids
from upsell.learning.answers import AnswersFitter, Evaluation
from upsell.store.arrow import contacts_arrow, events_named, subscriptions_table
from upsell.store.models import StoredModel, latest_model, save_model
from upsell.store.summary import data_span
from upsell.workspace import Workspace

NAME = "answers"


@dataclass(frozen=True)
class Learned:
    """A fit: the answers (with their stored version, None when not saved), what it rests on, and
    how well it did out of sample."""

    answers: Answers
    data_end: datetime
    decisions: int
    pending: int
    evaluation: Evaluation


def learn(
    ws: Workspace, *, until: datetime | None = None, save: bool = True, now: datetime | None = None
) -> Learned:
    """Fit the answers on the decisions made before `until` (by default the end of the data)
    whose window closed by then, with playbooks.yaml's learning settings; store the fit unless
    `save` is False."""
    catalog = ws.catalog()
    settings = ws.config.metrics
    learning = ws.playbooks(catalog).settings.learning
    backend = ws.backend
    with ws.db.connect() as conn:
        span = data_span(conn=conn)
        contacts = contacts_arrow(conn=conn)
        responses = events_named(conn=conn, names=list(RESPONSE_EVENTS))
        subscriptions = subscriptions_table(conn=conn)
    data_end = datetime.combine(span[1] + timedelta(days=1), time(), UTC) if span else _now(now)
    if until is not None:
        data_end = min(data_end, until)
    contacts = contacts.filter(
        pc.and_(
            pc.less(contacts.column("as_of"), pa.scalar(data_end)),
            pc.not_equal(contacts.column("status"), "failed"),
        )
    )
    decisions = [json.loads(d) if d else {} for d in contacts.column("decision").to_pylist()]
    outcomes: list[Outcome] = []
    accounts: list[str] = []
    pending = 0
    if contacts.num_rows and span is not None:
        trial = pa.array([int(d.get("trial_days") or 0) for d in decisions], pa.int64())
        rows = mrr_rows(subscriptions, catalog, settings)
        changes = materialised_changes(backend, rows, settings)
        window = settings.attribution_days
        done = offer_outcomes(
            backend,
            contacts.append_column("trial_days", trial),
            rows,
            changes,
            response_offer_ids(responses),
            window_days=window,
            data_end=data_end,
        ).to_pylist()
        churn = contact_churn(backend, contacts, changes, window_days=window).to_pylist()
        for c, d, o, ch in zip(contacts.to_pylist(), decisions, done, churn, strict=True):
            if o["pending"]:
                pending += 1
                continue
            outcomes.append(_outcome(c, d, bool(o["converted"]), ch))
            accounts.append(str(c["account_id"]))
    fitter = AnswersFitter(learning.strength, learning.churn_strength).fit(outcomes, accounts)
    answers, evaluation = fitter.answers, fitter.evaluation_
    if save:
        fitted_at = _now(now)
        with ws.db.begin() as conn:
            version = save_model(
                conn=conn,
                name=NAME,
                fitted_at=fitted_at,
                data_end=data_end,
                decisions=len(outcomes),
                params=answers.to_json(),
                evaluation={**evaluation_json(evaluation), "pending": pending},
            )
        answers = Answers.from_json(answers.to_json(), version=version, fitted_at=fitted_at)
    return Learned(answers, data_end, len(outcomes), pending, evaluation)


def answers_for(
    ws: Workspace, as_of: date, learning: Learning, *, refit: bool = True
) -> Answers | None:
    """The answers a run at `as_of` decides with: None when learning is off or the fit rests on
    fewer than ``min_decisions`` decisions. With `refit`, a fit older than ``refit_days`` (by its
    data's end) is replaced first, on the data before `as_of`; without it (a dry run) the fresh
    fit is used but not stored."""
    if not learning.use:
        return None
    at = day_start(as_of)
    stored = _newest(ws)
    if (
        stored is None
        or stored.data_end is None
        or stored.data_end > at
        or at - stored.data_end >= timedelta(days=learning.refit_days)
    ):
        fresh = learn(ws, until=at, save=refit)
        return fresh.answers if fresh.decisions >= learning.min_decisions else None
    return _answers(stored) if stored.decisions >= learning.min_decisions else None


def stored_answers(ws: Workspace, learning: Learning) -> Answers | None:
    """The newest stored fit, when learning is on and it rests on enough decisions (real-time
    triggers decide with it; they never refit)."""
    if not learning.use:
        return None
    stored = _newest(ws)
    if stored is None or stored.decisions < learning.min_decisions:
        return None
    return _answers(stored)


def _newest(ws: Workspace) -> StoredModel | None:
    with ws.db.connect() as conn:
        return latest_model(conn=conn, name=NAME)


def _answers(stored: StoredModel) -> Answers:
    return Answers.from_json(stored.params, version=stored.version, fitted_at=stored.fitted_at)


def _outcome(
    c: dict[str, Any], d: dict[str, Any], converted: bool, churn: dict[str, Any]
) -> Outcome:
    source = d.get("p_source") or {}
    prior = source.get("prior") if isinstance(source, dict) else None
    if not isinstance(prior, int | float):
        prior = d.get("p_accept")
    return Outcome(
        kind=str(c["kind"]),
        channel=str(c["channel"]),
        placement=str(c["placement"] or c["channel"]),
        playbook=str(c["playbook"] or ""),
        prior=float(prior) if isinstance(prior, int | float) else 0.0,
        held_out=bool(c["held_out"]),
        converted=converted,
        paid=bool(churn["paid"]),
        churned=bool(churn["churned"]),
        dearer=isinstance(d.get("smaller"), str),
        features=_features(d.get("features")),
    )


def _features(value: Any) -> dict[str, float]:
    """A decision line's features (those of the past decisions that carry them)."""
    if not isinstance(value, dict):
        return {}
    return {
        k: float(v)
        for k, v in value.items()
        if isinstance(v, int | float) and not isinstance(v, bool)
    }


def evaluation_json(e: Evaluation) -> dict[str, Any]:
    """An evaluation as plain JSON (stored with the fit, and `upsell learn --json`)."""
    return asdict(e)


def _now(now: datetime | None) -> datetime:
    return now if now is not None else datetime.now(UTC)
