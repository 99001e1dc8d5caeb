"""Typed strategy parameters, declared once per strategy.

Every strategy has a frozen pydantic model that rejects unknown keys. Build one with
:func:`make_params` (or through the strategy's constructor) so that a bad value raises
:class:`lyra.core.errors.ValidationError` naming the parameter, e.g.
``fast=50: must be smaller than slow (30)``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, TypeVar

import pydantic
from pydantic import BaseModel, ConfigDict, Field

from lyra.core.errors import ValidationError

#: A look-back window in bars: an integer of at least 1.
Window = Annotated[int, Field(ge=1, strict=False)]


class StrategyParams(BaseModel):
    """Base of every strategy's parameter model: frozen, unknown keys refused."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    def as_dict(self) -> dict[str, Any]:
        """The parameters as a plain dict (what sweeps and reports show)."""
        return self.model_dump()


P = TypeVar("P", bound=StrategyParams)


class ParamError(ValueError):
    """Raised inside model validators; carries the parameter name for the Lyra error."""

    def __init__(self, field: str, problem: str) -> None:
        self.field = field
        super().__init__(f"{field}: {problem}")


def make_params(model: type[P], values: Mapping[str, Any] | None = None, **kwargs: Any) -> P:
    """Validate ``values`` (and ``kwargs``) against ``model``.

    Raises :class:`~lyra.core.errors.ValidationError` whose ``field`` is the offending
    parameter and whose ``value`` is what was given.
    """
    data = dict(values or {})
    data.update(kwargs)
    try:
        return model(**data)
    except pydantic.ValidationError as exc:
        err = exc.errors()[0]
        loc = [str(x) for x in err.get("loc", ())]
        field = loc[0] if loc else ""
        problem = str(err.get("msg", "invalid"))
        ctx = err.get("ctx") or {}
        inner = ctx.get("error")
        if isinstance(inner, ParamError):
            field = inner.field
            problem = str(inner).split(": ", 1)[1]
        value = data.get(field, err.get("input"))
        raise ValidationError(field or model.__name__, value, problem) from None
