"""Privacy accounting: every mechanism that reads the private rows, composed into one (ε, δ).

All mechanisms are Gaussian: the noisy histograms that estimate bounds, quantiles and category
sets (sampling rate 1, one step each) and DP-SGD (Poisson sampling rate q, T steps). They are
composed with Rényi DP (Opacus' `RDPAccountant`) and converted to (ε, δ) once, which is
tighter than adding up per-step epsilons. Releasing category values seen in the data (an
unbounded domain) additionally fails with probability δ_extra, the chance that a value held
by one row passes the release threshold; that share of δ is set aside before the conversion.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any

from synthset.privacy.errors import missing_extra

_SEARCH_STEPS = 60


@dataclass(frozen=True)
class Mechanism:
    """One Gaussian mechanism applied to the private rows.

    `noise_multiplier` is the noise standard deviation over the L2 sensitivity; `covers`
    says in words what it released.
    """

    name: str
    covers: str
    noise_multiplier: float
    sample_rate: float = 1.0
    steps: int = 1
    delta_extra: float = 0.0


@dataclass
class PrivacyBudget:
    """A target (ε, δ) and how it is shared.

    `preprocessing_share` of the budget (as zCDP ρ, see `preprocessing_noise`) goes to the
    statistics the encoder needs (bounds, quantiles, category sets, target class shares) when
    they are not declared; DP-SGD gets what is left once everything is composed.
    `threshold_delta_share` of δ is the δ_extra of releasing category values seen in the
    data.
    """

    epsilon: float
    delta: float
    preprocessing_share: float = 0.1
    threshold_delta_share: float = 0.1

    def __post_init__(self) -> None:
        if not self.epsilon > 0:
            raise ValueError(f"epsilon must be positive, got {self.epsilon}")
        if not 0 < self.delta < 1:
            raise ValueError(f"delta must be in (0, 1), got {self.delta}")
        if not 0 < self.preprocessing_share < 1:
            raise ValueError(
                f"preprocessing_share must be in (0, 1), got {self.preprocessing_share}"
            )


def _accountant(mechanisms: list[Mechanism]) -> Any:
    try:
        from opacus.accountants import RDPAccountant
    except ImportError:
        raise missing_extra("opacus") from None
    accountant = RDPAccountant()
    accountant.history = [(m.noise_multiplier, m.sample_rate, m.steps) for m in mechanisms]
    return accountant


@contextmanager
def quiet_opacus() -> Iterator[None]:
    """Silence, inside the block only, Opacus warnings that tell a synthset user nothing: the
    secure-RNG notice (synthset seeds Opacus's noise generator from OS entropy itself) and
    PyTorch's backward-hook notices for layers whose input needs no gradient."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Secure RNG turned off")
        warnings.filterwarnings("ignore", message="Full backward hook is firing")
        warnings.filterwarnings("ignore", message="Using a non-full backward hook")
        yield


def compose_epsilon(mechanisms: list[Mechanism], delta: float) -> float:
    """ε of the RDP composition of `mechanisms` at `delta` (δ_extra not included)."""
    if not mechanisms:
        return 0.0
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Optimal order is the")
        return float(_accountant(mechanisms).get_epsilon(delta))


def _search(epsilon_of: Any, target: float) -> float:
    """Smallest noise multiplier whose ε is at most `target` (ε falls as noise grows)."""
    low, high = 1e-2, 1.0
    while epsilon_of(high) > target:
        high *= 2
        if high > 1e6:
            raise ValueError(f"no noise level reaches epsilon {target}")
    for _ in range(_SEARCH_STEPS):
        mid = math.sqrt(low * high)
        if epsilon_of(mid) > target:
            low = mid
        else:
            high = mid
        if high / low < 1.0005:
            break
    return high


@dataclass
class PrivacyLedger:
    """The mechanisms spent on one fit, against its budget."""

    budget: PrivacyBudget
    mechanisms: list[Mechanism] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    reserved_delta: float = 0.0

    @property
    def delta_extra(self) -> float:
        return sum(m.delta_extra for m in self.mechanisms)

    @property
    def rdp_delta(self) -> float:
        """The δ left for converting the RDP composition to (ε, δ) once δ_extra is reserved."""
        return self.budget.delta - self.reserved_delta

    def reserve_threshold_delta(self) -> float:
        """Set aside δ·threshold_delta_share for value-set releases; returns that δ."""
        self.reserved_delta = self.budget.delta * self.budget.threshold_delta_share
        return self.reserved_delta

    def share_noise(self, releases: int, share: float) -> float:
        """Noise multiplier for `releases` Gaussian releases that together cost `share` of
        the budget.

        The share is taken of the zero-concentrated DP budget ρ that (ε, δ) allows,
        ρ = (√(log(1/δ) + ε) − √log(1/δ))², because under composition privacy losses add
        up in ρ (m Gaussian releases of noise multiplier z cost m/(2z²)), not in ε.
        """
        log_inv = math.log(1 / self.rdp_delta)
        rho = (math.sqrt(log_inv + self.budget.epsilon) - math.sqrt(log_inv)) ** 2
        return math.sqrt(releases / (2 * share * rho))

    def preprocessing_noise(self, releases: int) -> float:
        """Noise multiplier for `releases` preprocessing histograms (`preprocessing_share`)."""
        return self.share_noise(releases, self.budget.preprocessing_share)

    def sgd_noise(self, sample_rate: float, steps: int) -> float:
        """Noise multiplier for DP-SGD so that everything composed stays within ε."""
        spent = list(self.mechanisms)
        return _search(
            lambda z: compose_epsilon(
                [*spent, Mechanism("", "", z, sample_rate, steps)], self.rdp_delta
            ),
            self.budget.epsilon,
        )

    def add(self, mechanism: Mechanism) -> None:
        self.mechanisms.append(mechanism)

    def spent(self) -> dict[str, float]:
        """(ε, δ) spent so far: the RDP composition plus δ_extra."""
        pre = [m for m in self.mechanisms if m.name != "dp-sgd"]
        return {
            "epsilon": compose_epsilon(self.mechanisms, self.rdp_delta),
            "delta": self.rdp_delta + self.delta_extra,
            "epsilon_preprocessing_alone": compose_epsilon(pre, self.rdp_delta),
            "epsilon_sgd_alone": compose_epsilon(
                [m for m in self.mechanisms if m.name == "dp-sgd"], self.rdp_delta
            ),
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "budget": asdict(self.budget),
            "spent": self.spent(),
            "accountant": "RDP (opacus.accountants.RDPAccountant), one conversion to (ε, δ)",
            "mechanisms": [asdict(m) for m in self.mechanisms],
            "notes": list(self.notes),
            "reserved_delta": self.reserved_delta,
        }


def default_delta(records: int) -> float:
    """δ when none is given: well below 1/n, as DP requires (min(1e-5, 1/(10·n)))."""
    return min(1e-5, 1.0 / (10 * max(records, 1)))
