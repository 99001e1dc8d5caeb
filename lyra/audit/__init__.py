"""The audit trail: the append-only, hash-chained event log and what is derived from it."""

from lyra.audit.chain import GENESIS_HASH, EventRecord, canonical_json
from lyra.audit.ledger import Ledger, LedgerTransaction, read_tables, state_as_rows
from lyra.audit.log import EventLog, LogTransaction
from lyra.audit.projections import ProjectedState, Projector, replay
from lyra.audit.verify import Problem, VerifyReport, verify

__all__ = [
    "GENESIS_HASH",
    "EventLog",
    "EventRecord",
    "Ledger",
    "LedgerTransaction",
    "LogTransaction",
    "Problem",
    "ProjectedState",
    "Projector",
    "VerifyReport",
    "canonical_json",
    "read_tables",
    "replay",
    "state_as_rows",
    "verify",
]
