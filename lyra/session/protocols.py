"""What the session runtime asks of its parts, as typed protocols (checked with
``isinstance``, not probed with ``getattr``/``hasattr``).

* :class:`SessionStrategy` -- a strategy's incremental form: ``on_bar`` (every strategy).
* :class:`CloseOnly` -- one that also takes a bare close price (``on_close``): the fast
  bars-only loop may drive it without building Bar objects.
* :class:`TracksPosition` -- one that keeps ``target_position`` (-1/0/+1): the session makes it
  follow the strategy's real position when an order did not happen.
* :class:`EmitsParents` -- one that asks for execution algorithms itself (``ParentIntent``).
* :class:`RestartSurvivingBroker` -- a venue that keeps orders across our restarts (live):
  orders are committed to the log before they are sent.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from lyra.core.market import Bar
from lyra.core.orders import OrderIntent


@runtime_checkable
class SessionStrategy(Protocol):
    """A strategy's incremental form, as the session drives it."""

    def on_bar(self, bar: Bar) -> list[Any]: ...


@runtime_checkable
class CloseOnly(Protocol):
    """A strategy that needs only each bar's close (the fast loop's ``on_close``)."""

    def on_close(self, close: float) -> list[OrderIntent]: ...


@runtime_checkable
class TracksPosition(Protocol):
    """A strategy that keeps its idea of its position (-1, 0, +1)."""

    target_position: int


@runtime_checkable
class EmitsParents(Protocol):
    """A strategy that emits ``ParentIntent`` itself (the session then runs algorithms)."""

    emits_parents: bool


@runtime_checkable
class RestartSurvivingBroker(Protocol):
    """A broker whose venue outlives the process (``survives_restart = True``: live venues)."""

    survives_restart: bool


def emits_parents(strategy: object) -> bool:
    """True if ``strategy`` asks for execution algorithms itself."""
    return isinstance(strategy, EmitsParents) and bool(strategy.emits_parents)


def survives_restart(broker: object) -> bool:
    """True if ``broker``'s venue keeps our orders across restarts (write-ahead needed)."""
    return isinstance(broker, RestartSurvivingBroker) and bool(broker.survives_restart)


__all__ = ["CloseOnly", "EmitsParents", "RestartSurvivingBroker", "SessionStrategy", "TracksPosition",
           "emits_parents", "survives_restart"]
