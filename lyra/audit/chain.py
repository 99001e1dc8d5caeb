"""The hash chain: how an event's hash and its JSON-lines mirror line are computed.

Kept in one small module so that the writer and the verifier cannot disagree.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

GENESIS_HASH = "0" * 64


def canonical_json(payload: Any) -> str:
    """Deterministic JSON: sorted keys, no spaces, Decimals as strings."""
    return _ENCODER.encode(payload)


def _json_default(o: object) -> object:
    if isinstance(o, Decimal):
        return str(o)
    if hasattr(o, "value") and isinstance(getattr(o, "value", None), str):  # enums
        return o.value
    raise TypeError(f"cannot put {type(o).__name__} into an event payload")


# One encoder for every entry: json.dumps with options builds a new one per call.
_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"), default=_json_default,
                            ensure_ascii=False)


def entry_hash(seq: int, ts: int, actor: str, kind: str, session_id: str, payload: str,
               prev_hash: str) -> str:
    """SHA-256 over every field of the entry and the previous entry's hash, joined by the
    unit separator (0x1F), which cannot appear unescaped in canonical JSON or our ids."""
    return hashlib.sha256(
        f"{seq}\x1f{ts}\x1f{actor}\x1f{kind}\x1f{session_id}\x1f{payload}\x1f{prev_hash}".encode()
    ).hexdigest()


@dataclass(frozen=True, slots=True)
class EventRecord:
    """One entry of the event log, as stored."""

    seq: int
    ts: int
    actor: str
    kind: str
    session_id: str
    payload: str  # canonical JSON text
    prev_hash: str
    hash: str

    def data(self) -> Any:
        """The payload parsed back into Python objects (Decimals stay strings)."""
        return json.loads(self.payload)

    def jsonl_line(self) -> str:
        return jsonl_line(self.seq, self.ts, self.actor, self.kind, self.session_id, self.payload,
                          self.prev_hash, self.hash)


_quoted: dict[str, str] = {}


def _q(s: str) -> str:
    # Actors, kinds and session ids repeat a lot: quote each once.
    v = _quoted.get(s)
    if v is None:
        v = json.dumps(s)
        if len(_quoted) < 100_000:
            _quoted[s] = v
    return v


def jsonl_line(seq: int, ts: int, actor: str, kind: str, session_id: str, payload: str,
               prev_hash: str, hash_: str) -> str:
    """The mirror file's line for an entry. Built by formatting, not by ``json.dumps`` of a
    dict, so that verifying the file is a string comparison (fast) and the payload text is
    kept byte for byte."""
    return (
        f'{{"seq":{seq},"ts":{ts},"actor":{_q(actor)},"kind":{_q(kind)},'
        f'"session_id":{_q(session_id)},"payload":{payload},'
        f'"prev_hash":"{prev_hash}","hash":"{hash_}"}}\n'
    )
