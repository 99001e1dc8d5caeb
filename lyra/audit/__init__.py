"""The audit trail: the append-only, hash-chained event log and what is derived from it.

Each kind of entry has a type in the event catalogue (:mod:`lyra.audit.events`):
``parse_event(kind, payload)`` reads any entry, ``EVENT_TYPES`` lists them all."""

from lyra.audit.chain import GENESIS_HASH, EventRecord, canonical_json
from lyra.audit.events import EVENT_TYPES, Event, EventPayloadError, parse_event, parse_record
from lyra.audit.ledger import Ledger, LedgerTransaction, read_tables, state_as_rows
from lyra.audit.log import EventLog, LogTransaction
from lyra.audit.projections import ProjectedState, Projector, replay
from lyra.audit.verify import Problem, VerifyReport, verify

__all__ = [
    "EVENT_TYPES",
    "GENESIS_HASH",
    "Event",
    "EventLog",
    "EventPayloadError",
    "EventRecord",
    "Ledger",
    "LedgerTransaction",
    "LogTransaction",
    "Problem",
    "ProjectedState",
    "Projector",
    "VerifyReport",
    "canonical_json",
    "parse_event",
    "parse_record",
    "read_tables",
    "replay",
    "state_as_rows",
    "verify",
]
