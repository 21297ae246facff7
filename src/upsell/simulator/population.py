"""Who the simulated customers are: firmographics and the hidden traits that drive their behaviour.

Everything here is drawn once, when the world is made, from counter-based random numbers keyed by the
account's number, so the same seed gives the same people.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from upsell.simulator import _random as rnd

# (country, currency, language, share of signups)
COUNTRIES: tuple[tuple[str, str, str, float], ...] = (
    ("US", "USD", "en", 0.36),
    ("GB", "GBP", "en", 0.12),
    ("DE", "EUR", "de", 0.12),
    ("NL", "EUR", "nl", 0.10),
    ("FR", "EUR", "fr", 0.10),
    ("IT", "EUR", "it", 0.10),
    ("NO", "NOK", "nb", 0.10),
)
INDUSTRIES: tuple[tuple[str, float], ...] = (
    ("software", 0.22),
    ("agency", 0.16),
    ("ecommerce", 0.16),
    ("education", 0.10),
    ("healthcare", 0.09),
    ("finance", 0.09),
    ("manufacturing", 0.08),
    ("nonprofit", 0.10),
)
#: The hidden response types of uplift modelling (Radcliffe & Surry, "Real-world uplift modelling
#: with significance-based uplift trees", 2011): who buys anyway, who buys only when asked, who never
#: buys, and who is put off (and may leave) when asked.
RESPONSE_TYPES: tuple[tuple[str, float], ...] = (
    ("sure_thing", 0.08),
    ("persuadable", 0.32),
    ("lost_cause", 0.48),
    ("sleeping_dog", 0.12),
)
_NAME_A = ("North", "Blue", "Bright", "Green", "Silver", "Red", "Swift", "True", "Clear", "Bold",
           "Nova", "Iron", "Open", "Sun", "Oak", "Polar", "Urban", "Prime", "Vivid", "Alto")  # fmt: skip
_NAME_B = ("field", "stone", "wave", "leaf", "line", "path", "bridge", "works", "forge", "spark",
           "point", "gate", "ridge", "bay", "loop", "mark", "peak", "craft", "hive", "port")  # fmt: skip
_NAME_C = ("Labs", "Studio", "Group", "Systems", "Co", "Partners", "Digital", "Health", "Foods",
           "Learning")  # fmt: skip

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]
B = npt.NDArray[np.bool_]


def categorical(u: F64, shares: tuple[float, ...]) -> I64:
    return rnd.choose(u, np.tile(np.asarray(shares, dtype=np.float64), (len(u), 1)))


@dataclass
class Population:
    """Fixed attributes of the N accounts, account ``j`` signing up on day ``signup_day[j]``."""

    size: int
    signup_day: I64
    employees: I64
    industry: I64
    country: I64
    engagement: F64  # multiplies how often users show up
    team_target: I64  # users the account grows to
    work_factor: F64  # scales projects, storage and other work gauges
    goal: I64  # index into the profile's goal signals, -1 for none
    activates: B
    activation_delay: I64
    response_type: I64  # index into RESPONSE_TYPES
    satisfaction: F64  # standard normal: drives NPS and churn
    names: list[str]

    @classmethod
    def draw(
        cls,
        *,
        seed: int,
        size: int,
        days: int,
        goals: int,
        activation_share: float,
        activation_days: float,
        users_per_employee: float,
    ) -> Population:
        j = np.arange(size, dtype=np.int64)

        def u(purpose: str) -> F64:
            return rnd.uniform(rnd.stream(seed, purpose), j)

        def z(purpose: str) -> F64:
            return rnd.normal(rnd.stream(seed, purpose), j)

        # Signups accelerate over the period (density proportional to exp(g t)), in id order.
        g = 1.2
        first = np.floor(days * np.log1p(u("signup") * np.expm1(g)) / g).astype(np.int64)
        signup = np.sort(np.minimum(first, days - 1))
        employees = np.clip(np.rint(np.exp(np.log(8.0) + 1.4 * z("employees"))), 1, 20000)
        team = np.clip(
            np.rint(employees * users_per_employee * np.exp(0.6 * z("team"))), 1, 2000
        ).astype(np.int64)
        goal_u = u("goal")
        goal = np.where(goal_u < 0.25 * goals, np.floor(goal_u / 0.25), -1).astype(np.int64)
        delay = np.ceil(-activation_days * np.log1p(-u("activation_delay"))).astype(np.int64)
        a, b, c = u("name_a"), u("name_b"), u("name_c")
        names = [
            f"{_NAME_A[int(x * len(_NAME_A))]}{_NAME_B[int(y * len(_NAME_B))]} "
            f"{_NAME_C[int(w * len(_NAME_C))]}"
            for x, y, w in zip(a.tolist(), b.tolist(), c.tolist(), strict=True)
        ]
        return cls(
            size=size,
            signup_day=signup,
            employees=employees.astype(np.int64),
            industry=categorical(u("industry"), tuple(s for _, s in INDUSTRIES)),
            country=categorical(u("country"), tuple(c[3] for c in COUNTRIES)),
            engagement=np.exp(0.5 * z("engagement") - 0.125),
            team_target=team,
            work_factor=np.exp(0.5 * z("work") - 0.125),
            goal=goal,
            activates=u("activates") < activation_share,
            activation_delay=np.maximum(delay, 1),
            response_type=categorical(u("response"), tuple(s for _, s in RESPONSE_TYPES)),
            satisfaction=z("satisfaction"),
            names=names,
        )
