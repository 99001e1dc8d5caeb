"""Parallel fast path of ``verify`` for large logs: one chunk of sequence numbers per core.

Each worker checks the hashes and links inside its chunk and compares its part of the mirror
file; the parent checks the links between chunks. Any doubt sends the caller to the serial
check, which names the first bad entry.
"""

from __future__ import annotations

import hashlib
import multiprocessing as mp
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from lyra.audit.chain import GENESIS_HASH, _q
from lyra.store.tables import audit_head

if TYPE_CHECKING:
    from lyra.audit.verify import VerifyReport

MIN_PARALLEL = 200_000


def _seq_at(line: bytes) -> int:
    if not line.startswith(b'{"seq":'):
        return -1
    try:
        return int(line[7 : line.index(b",")])
    except ValueError:
        return -1


def _file_offset_of(path: Path, seq: int) -> int:
    """Byte offset of the line holding ``seq``, by bisection on byte positions (-1 if absent)."""
    size = path.stat().st_size
    lo, hi = 0, size
    with open(path, "rb") as f:
        while lo < hi:
            mid = (lo + hi) // 2
            f.seek(mid)
            if mid:
                f.readline()  # to the start of the next line
            start = f.tell()
            s = _seq_at(f.readline())
            if s == -1 and start < size:
                return -1
            if start >= size or s >= seq:
                hi = mid
            else:
                lo = mid + 1
        f.seek(lo)
        if lo:
            f.readline()
        pos = f.tell()
        return pos if _seq_at(f.readline()) == seq else -1


def _check_chunk(url: str, path: str | None, lo: int, hi: int, offset: int) -> tuple[bool, str, str, int]:
    """(all good?, prev_hash of the first entry, hash of the last, entries seen)."""
    from lyra.audit.verify import _db_rows
    from lyra.store.engine import create_engine_for

    engine = create_engine_for(url)
    f = open(path, encoding="utf-8") if path else None  # noqa: SIM115
    try:
        if f is not None:
            f.seek(offset)
        expected = lo
        first_prev = ""
        prev = ""
        n = 0
        # The same computations as entry_hash() and jsonl_line(), inlined: at a million rows
        # the function calls alone cost a noticeable share of the budget.
        sha = hashlib.sha256
        q = _q
        readline = f.readline if f is not None else None
        for seq, ts, actor, kind, sid, payload, prev_hash, h in _db_rows(engine, lo=lo, hi=hi):
            if seq != expected:
                return False, "", "", n
            if n == 0:
                first_prev = prev_hash
            elif prev_hash != prev:
                return False, "", "", n
            if sha(f"{seq}\x1f{ts}\x1f{actor}\x1f{kind}\x1f{sid}\x1f{payload}\x1f{prev_hash}".encode()
                   ).hexdigest() != h:
                return False, "", "", n
            if readline is not None and readline() != (
                f'{{"seq":{seq},"ts":{ts},"actor":{q(actor)},"kind":{q(kind)},'
                f'"session_id":{q(sid)},"payload":{payload},"prev_hash":"{prev_hash}","hash":"{h}"}}\n'
            ):
                return False, "", "", n
            prev = h
            expected += 1
            n += 1
        return n == hi - lo + 1, first_prev, prev, n
    finally:
        if f is not None:
            f.close()
        engine.dispose()


def verify_parallel(
    engine: Engine, jsonl_path: Path | None, workers: int | None = None
) -> VerifyReport | None:
    """A clean VerifyReport if the parallel check passes; None to ask for the serial check."""
    from lyra.audit.verify import VerifyReport

    workers = workers or min(os.cpu_count() or 1, 8)
    with engine.connect() as conn:
        head = conn.execute(sa.select(audit_head.c.seq, audit_head.c.hash)).one_or_none()
    if head is None or workers < 2 or head.seq < MIN_PARALLEL or engine.url.database == ":memory:":
        return None
    n = int(head.seq)
    if jsonl_path is not None and not jsonl_path.exists():
        return None
    bounds = [(1 + n * k // workers, n * (k + 1) // workers) for k in range(workers)]
    offsets = []
    for lo, _ in bounds:
        off = _file_offset_of(jsonl_path, lo) if jsonl_path is not None else 0
        if off < 0:
            return None
        offsets.append(off)
    url = engine.url.render_as_string(hide_password=False)
    ctx = mp.get_context("fork")
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
        futs = [pool.submit(_check_chunk, url, str(jsonl_path) if jsonl_path else None, lo, hi, off)
                for (lo, hi), off in zip(bounds, offsets, strict=True)]
        results = [f.result() for f in futs]
    prev = GENESIS_HASH
    for ok, first_prev, last, _ in results:
        if not ok or first_prev != prev:
            return None
        prev = last
    if prev != head.hash:
        return None
    if jsonl_path is not None:
        with open(jsonl_path, "rb") as f:
            f.seek(offsets[-1])
            for _ in range(bounds[-1][1] - bounds[-1][0] + 1):
                f.readline()
            if f.readline():
                return None  # extra lines after the last entry
    return VerifyReport(entries=n, file_entries=n if jsonl_path is not None else 0)
