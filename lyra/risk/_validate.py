"""Input checks shared by the risk modules (private).

Every failure raises :class:`lyra.core.errors.ValidationError` naming the argument, the
offending value (or its position in an array) and the fix, so a notebook user sees at once
which of their inputs is wrong.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from lyra.core.errors import ValidationError

FloatArray = NDArray[np.float64]


def as_float_array(field: str, value: ArrayLike, *, ndim: tuple[int, ...]) -> FloatArray:
    """``value`` as a finite float64 array with one of the allowed dimensions."""
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValidationError(field, _short(value), "is not numeric", str(exc)) from None
    if arr.ndim not in ndim:
        raise ValidationError(
            field,
            f"array of shape {arr.shape}",
            f"must have {' or '.join(str(d) for d in ndim)} dimension(s)",
        )
    check_finite(field, arr)
    return arr


def check_finite(field: str, arr: FloatArray) -> None:
    """Raise on the first NaN/inf, naming its position."""
    if arr.size and not np.isfinite(arr).all():
        bad = np.argwhere(~np.isfinite(arr))[0]
        where = f"[{', '.join(str(int(i)) for i in bad)}]" if arr.ndim else ""
        raise ValidationError(
            f"{field}{where}",
            float(arr[tuple(bad)]) if arr.ndim else float(arr),
            "is not a finite number",
            "drop or fill missing values before calling",
        )


def finite_float(field: str, value: Any) -> float:
    """A finite Python float."""
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise ValidationError(field, value, "is not a number") from None
    if not math.isfinite(out):
        raise ValidationError(field, value, "is not a finite number")
    return out


def positive_float(field: str, value: Any) -> float:
    out = finite_float(field, value)
    if out <= 0.0:
        raise ValidationError(field, value, "must be > 0")
    return out


def non_negative_float(field: str, value: Any) -> float:
    out = finite_float(field, value)
    if out < 0.0:
        raise ValidationError(field, value, "must be >= 0")
    return out


def open_unit(field: str, value: Any) -> float:
    """A number strictly inside (0, 1), e.g. a confidence level or a fraction."""
    out = finite_float(field, value)
    if not 0.0 < out < 1.0:
        raise ValidationError(field, value, "must be strictly between 0 and 1", "e.g. 0.99")
    return out


def positive_int(field: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise ValidationError(field, value, "must be an integer")
    if value < 1:
        raise ValidationError(field, value, "must be >= 1")
    return int(value)


def check_covariance(field: str, cov: ArrayLike) -> FloatArray:
    """A square, symmetric, positive semi-definite matrix (checked to a relative 1e-10)."""
    arr = as_float_array(field, cov, ndim=(2,))
    n, m = arr.shape
    if n != m or n == 0:
        raise ValidationError(field, f"array of shape {arr.shape}", "must be square N×N, N >= 1")
    scale = float(np.max(np.abs(np.diag(arr)))) if n else 0.0
    if scale <= 0.0:
        raise ValidationError(field, "diagonal all zero", "variances must be > 0")
    if not np.allclose(arr, arr.T, rtol=1e-10, atol=1e-12 * scale):
        raise ValidationError(field, "asymmetric matrix", "must be symmetric")
    if np.any(np.diag(arr) <= 0.0):
        i = int(np.argmin(np.diag(arr)))
        raise ValidationError(f"{field}[{i}, {i}]", float(arr[i, i]), "variance must be > 0")
    lam_min = float(np.linalg.eigvalsh(arr)[0])
    if lam_min < -1e-10 * scale:
        raise ValidationError(field, f"min eigenvalue {lam_min:.3g}", "must be positive semi-definite")
    return arr


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
