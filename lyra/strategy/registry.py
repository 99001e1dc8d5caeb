"""Strategies by name: a shipped one (``"sma_cross"``) or any class by import path
(``"mypkg.signals:MyStrategy"``).

A session config names its strategy with one string. A shipped name is looked up in
:data:`SHIPPED`; anything else must be ``"<module>:<attribute>"``, where the module is
importable from where Lyra runs (an installed package, or a folder on ``PYTHONPATH``) and the
attribute is a class that keeps the strategy contract: a concrete subclass of
:class:`lyra.strategy.Strategy` (typed ``params_model``, ``signals()``, ``incremental()``).

>>> strategy_class("sma_cross").__name__
'SmaCross'
>>> load_strategy("lyra.strategy.sma_cross:SmaCross", {"fast": 5, "slow": 20})
SmaCross(fast=5, slow=20, ma='sma', allow_short=False)

Every refusal is a :class:`~lyra.core.errors.ConfigError` naming the field (``strategy``, or
``params.<name>`` for a bad parameter), the value, and what to do. Importing a module runs
its code, as ``import`` does: name only modules you trust.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Mapping
from typing import Any

from lyra.core.errors import ConfigError, ValidationError
from lyra.strategy.base import Strategy
from lyra.strategy.params import StrategyParams

#: The strategies Lyra ships, by the short name a config may use.
SHIPPED: dict[str, str] = {
    "sma_cross": "lyra.strategy.sma_cross:SmaCross",
    "rsi_reversion": "lyra.strategy.rsi_reversion:RsiReversion",
    "bollinger": "lyra.strategy.bollinger:Bollinger",
}

_CONTRACT = "a concrete subclass of lyra.strategy.Strategy, with params_model, signals() and incremental()"


def _known() -> str:
    return ", ".join(sorted(SHIPPED))


def strategy_class(spec: str, *, field: str = "strategy") -> type[Strategy[Any]]:
    """The strategy class ``spec`` names (a shipped name or ``"module:Class"``), checked
    against the contract. Raises :class:`ConfigError` naming ``field`` otherwise."""
    if not isinstance(spec, str) or not spec.strip():
        raise ConfigError(field, spec, "is empty",
                          f"use a shipped strategy ({_known()}) or 'package.module:Class'")
    path = SHIPPED.get(spec, spec)
    mod_name, sep, attr = path.partition(":")
    if not sep or not mod_name or not attr:
        raise ConfigError(field, spec, "unknown strategy",
                          f"use a shipped strategy ({_known()}) or an import path 'package.module:Class'")
    try:
        module = importlib.import_module(mod_name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and (mod_name == exc.name or mod_name.startswith(exc.name + ".")):
            raise ConfigError(field, spec, f"no module named {exc.name!r}",
                              "install the package, or put its folder on PYTHONPATH") from None
        raise ConfigError(field, spec, f"importing {mod_name!r} failed: {exc}",
                          "install what the module imports") from None
    except Exception as exc:  # the module's own code failed: say so, never a traceback
        raise ConfigError(field, spec, f"importing {mod_name!r} failed: {type(exc).__name__}: {exc}",
                          "fix the module so that it imports") from None
    obj: Any = module
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise ConfigError(field, spec, f"module {mod_name!r} has no attribute {attr!r}",
                              "check the class name after ':'") from None
    if not (isinstance(obj, type) and issubclass(obj, Strategy)):
        what = f"a {type(obj).__name__}" if not isinstance(obj, type) else f"the class {obj.__name__}"
        raise ConfigError(field, spec, f"is {what}, not a strategy", f"name {_CONTRACT}")
    if inspect.isabstract(obj):
        missing = ", ".join(sorted(getattr(obj, "__abstractmethods__", ())))
        raise ConfigError(field, spec, f"is an abstract strategy (does not implement {missing})",
                          f"name {_CONTRACT}")
    model = getattr(obj, "params_model", None)
    if not (isinstance(model, type) and issubclass(model, StrategyParams)):
        raise ConfigError(field, spec, "has no params_model (a subclass of lyra.strategy.StrategyParams)",
                          f"name {_CONTRACT}")
    return obj


def load_strategy(spec: str, params: Mapping[str, Any] | None = None) -> Strategy[Any]:
    """The strategy ``spec`` names, built with ``params``; a bad parameter is a
    :class:`ConfigError` on ``params.<name>``."""
    cls = strategy_class(spec)
    try:
        return cls(dict(params or {}))
    except ValidationError as exc:
        if isinstance(exc, ConfigError):
            raise
        raise ConfigError(f"params.{exc.field}", exc.value, exc.problem, exc.hint) from None
