"""Cost from the optional ``prices`` table in the config (US dollars per million tokens).

agentcli ships no prices: they change, and a wrong number is worse than none. A cost is shown
only when every model that was used has a price; requests whose server reported no usage make it
a lower bound, and it says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from ..messages import Usage
from ..sessions.config import Price, SessionSettings


@dataclass(frozen=True)
class Cost:
    usd: float
    complete: bool
    """False when some request reported no usage (the cost is then at least ``usd``)."""

    def describe(self) -> str:
        digits = 6 if self.usd < 0.01 else 4 if self.usd < 1 else 2
        amount = f"${self.usd:,.{digits}f}"
        return amount if self.complete else f"at least {amount} (some requests reported no usage)"

    def as_json(self) -> dict[str, Any]:
        return {"usd": round(self.usd, 6), "complete": self.complete}


def spend(price: Price, usage: Usage) -> float:
    """Dollars for ``usage`` at ``price``: cache reads and writes at their own prices when the
    table has them (else at the input price), the rest of the input at the input price."""
    read = usage.cached_input_tokens
    write = usage.cache_write_tokens
    plain = max(0, usage.input_tokens - read - write)
    read_price = price.input if price.cache_read is None else price.cache_read
    write_price = price.input if price.cache_write is None else price.cache_write
    return (plain * price.input + read * read_price + write * write_price
            + usage.output_tokens * price.output) / 1e6


def cost(settings: SessionSettings, by_model: Mapping[str, Usage]) -> Cost | None:
    """The cost of usage spent by each model; None when any used model has no price."""
    total = 0.0
    complete = True
    for model, usage in by_model.items():
        if not usage.requests:
            continue
        price = settings.price(model)
        if price is None:
            return None
        total += spend(price, usage)
        complete = complete and usage.unreported == 0
    if not any(u.requests for u in by_model.values()):
        return None
    return Cost(total, complete)


class CostLimit:
    """``--max-cost USD`` for one run, at one model's price. ``before`` is asked before every
    request with its input in tokens (at the full input price: a cache discount is not
    counted on); ``after`` with every response's usage. Each returns the line that stops the
    run, or None. A request whose server reports no usage is counted at the estimate made
    before it (its input only: the line says the spend is a lower bound)."""

    def __init__(self, usd: float, price: Price) -> None:
        self.usd = usd
        self.price = price
        self.spent = 0.0
        self.complete = True
        self._estimate = 0.0

    def _line(self, what: str) -> str:
        spent = Cost(self.spent, self.complete).describe()
        return f"{what}: spent {spent} of the --max-cost limit ${self.usd:,.4f}"

    def before(self, input_tokens: int) -> str | None:
        self._estimate = input_tokens * self.price.input / 1e6
        if self.spent + self._estimate > self.usd:
            return self._line(f"stopped before a request whose input alone (~{input_tokens:,} "
                              f"tokens, ${self._estimate:,.4f}) would cross the limit")
        return None

    def after(self, usage: Usage) -> str | None:
        if usage.known:
            self.spent += spend(self.price, usage)
        else:  # the server said nothing: the input estimate is all that is known
            self.spent += self._estimate
            self.complete = False
        if self.spent > self.usd:
            return self._line("stopped: the run crossed its spending limit")
        return None