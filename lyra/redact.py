"""One place that hides secrets before anything is logged or shown."""

from __future__ import annotations

import re
from typing import Any

_SECRET_KEY = re.compile(r"(secret|password|passwd|token|api_?key|private|seed|totp|credential)", re.I)
_URL_PASSWORD = re.compile(r"(?P<pre>://[^:/@]+:)(?P<pw>[^@]+)(?P<post>@)")
REDACTED = "***"


def redact(value: Any, key: str = "") -> Any:
    """Return a copy of ``value`` with secret-looking keys masked and URL passwords hidden."""
    if isinstance(value, dict):
        return {k: redact(v, str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(redact(v, key) for v in value)
    if key and _SECRET_KEY.search(key) and value not in (None, ""):
        return REDACTED
    if isinstance(value, str):
        return _URL_PASSWORD.sub(lambda m: m["pre"] + REDACTED + m["post"], value)
    return value
