"""The integer core of the smart order router (see :mod:`lyra.execution.routing`).

Everything here is exact integer arithmetic: prices, sizes and fee rates arrive scaled to
common powers of ten, so a cost is ``price × size × fee factor`` with no rounding anywhere.
A *cost* is signed so that one minimisation serves both sides: a buy costs
``+gross × (1 + fee)``, a sell ``-gross × (1 - fee)`` (minus the proceeds).

**The model.** Taking ``q`` from a venue costs the walk of its book, best level first. In units
of any fixed size ``u`` the cost of the ``j``-th unit never decreases with ``j`` (a unit that
straddles two levels costs the blend, which lies between them): the cost is *convex* in the
number of units. A venue either gets nothing or a multiple of its size step between its
minimum and its depth.

**Why the result is optimal.**

1. *One step for all venues, no minimums.* Separable convex allocation of identical units:
   taking units in order of marginal cost (a merge of the venues' unit-cost runs) is optimal,
   the textbook greedy result.
2. *Minimums.* They make a venue's feasible set ``{0} ∪ [min, depth]``: not convex. For a fixed
   set ``T`` of venues that trade, each forced to its minimum, the rest is convex again. The
   optimum's own set of venues is one of the ``2^n - 1`` subsets, so trying each (n is small)
   and keeping the best is exact. The greedy without minimums comes first: it solves a
   relaxation, so when its answer already meets every minimum it is optimal and no subset is
   tried.
3. *Two steps* ``s | c``. Split the venues into a fine group (step ``s``) and a coarse group
   (step ``c``). Each group's best cost as a function of its own total is convex (a merge of
   convex unit sequences); the fine group's cost at ``R - a·c`` is convex in ``a`` too (sums
   over equal blocks of a non-decreasing sequence do not decrease). So the total is convex in
   the coarse group's unit count ``a`` and a binary search on its differences finds the best
   ``a`` exactly.
4. *Any steps.* Let ``s`` be the finest step and ``U`` the least common multiple of all steps.
   Every other venue's child is ``r + k·U`` with a residue ``r`` in ``{0, step, ..., U - step}``.
   For fixed residues those venues form one coarse group of step ``U`` (each starting at its
   residue; its cost stays convex in ``k``), which is case 3. Enumerating the residues
   (``U / step`` values per coarse venue; one value when the steps divide each other only
   through ``U`` itself) is exact. When that would take more than :data:`MAX_RESIDUE_COMBOS`
   combinations, only residue 0 is tried: children stay valid but the split may cost a little
   more than the optimum, and ``Solution.exact`` is False.

The quantity routed comes first: for each candidate the largest reachable total not above the
target is taken (the coarse group as large as it can be, see ``_solve``), and costs are only
compared between candidates that route the same quantity.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import accumulate, chain, combinations, product, repeat
from operator import itemgetter, mul

#: A run of units of equal cost on one venue: (cost of one unit, venue index, unit count).
Run = tuple[int, int, int]

#: Residue combinations tried per venue subset before falling back to residue 0 (case 4).
MAX_RESIDUE_COMBOS = 256


def unit_runs(prices: Sequence[int], sizes: Sequence[int], step: int, unit_factor: int, vidx: int,
              max_units: int, start: int = 0) -> list[Run]:
    """The book after its first ``start`` quantity, as runs of whole ``step`` units.

    Cheapest first, at least ``max_units`` units when the book holds them (more is fine).
    ``unit_factor`` turns a unit's gross cost into its signed net cost (see the module doc).
    A remainder shorter than one unit at the end of the book cannot be taken.
    """
    if start:
        i = 0
        while i < len(sizes) and sizes[i] <= start:
            start -= sizes[i]
            i += 1
        prices = prices[i:]
        sizes = [sizes[i] - start, *sizes[i + 1:]] if i < len(sizes) else []
    # Only the levels the first ``max_units`` units can reach (found at C speed).
    cut = bisect_left(list(accumulate(sizes)), max_units * step) + 1
    if cut < len(sizes):
        prices, sizes = prices[:cut], sizes[:cut]
    if not any(map(step.__rmod__, sizes)):
        # Every level holds whole units (the usual case: a venue's book is made of its own
        # lots): one run per level, built at C speed.
        f = step * unit_factor
        return list(zip(map(f.__mul__, prices), repeat(vidx), map(step.__rfloordiv__, sizes), strict=False))
    runs: list[Run] = []
    append = runs.append
    cq = cc = 0  # quantity and gross cost carried into a unit that straddles levels
    for p, s in zip(prices, sizes, strict=True):
        if cq:
            need = step - cq
            if s < need:
                cq += s
                cc += p * s
                continue
            append(((cc + p * need) * unit_factor, vidx, 1))
            s -= need
            cq = cc = 0
        k, r = divmod(s, step)
        if k:
            append((p * step * unit_factor, vidx, k))
        if r:
            cq, cc = r, p * r
    return runs


def walk_cost(prices: Sequence[int], sizes: Sequence[int], qty: int) -> int:
    """Gross cost of the first ``qty`` of the book."""
    gross = 0
    for p, s in zip(prices, sizes, strict=True):
        if qty <= 0:
            break
        t = s if s < qty else qty
        gross += p * t
        qty -= t
    return gross


def notional_min_units(prices: Sequence[int], sizes: Sequence[int], step: int, need: int,
                       cap_units: int, *, rising: bool = False) -> int:
    """Smallest unit count from which on every child clears the minimum notional.

    The venue checks ``quantity × limit price``, and a child's limit price is the price of the
    level its last unit ends in. ``need`` is the minimum notional scaled to ``price × size``
    units. For buys (``rising`` prices) ``k × worst(k)`` grows with ``k`` and the first level
    where a child passes ends the search; for sells it can dip at a level boundary, so the
    threshold is the one after which no child up to the capacity fails.
    """
    if need <= 0:
        return 0
    worst_fail = 0
    cum = 0
    floor_price = min(prices[0], prices[-1]) if prices else 0
    for p, s in zip(prices, sizes, strict=True):
        if cum * floor_price >= need:
            # Every later unit ends past ``cum`` at a price >= the book's lowest: it passes.
            break
        lo = cum // step + 1  # first unit whose end falls in this level
        cum += s
        hi = min(cum // step, cap_units)
        if hi >= lo:
            req = -(-need // (step * p))  # ceil: units needed at this price
            fail = min(hi, req - 1)
            if fail >= lo:
                worst_fail = max(worst_fail, fail)
            elif rising:
                break
        if hi >= cap_units:
            break
    return worst_fail + 1


@dataclass(slots=True)
class VenueModel:
    """One venue's side of the book for one plan, in integers (size scale for quantities)."""

    vidx: int
    step: int  #: the venue's size step
    min_qty: int  #: the smallest child allowed (a multiple of ``step``, >= ``step``)
    cap_qty: int  #: the largest: whole steps within the depth (and the limit price)
    prices: Sequence[int]
    sizes: Sequence[int]
    factor: int  #: signed net cost multiplier of a gross cost (module doc)

    @property
    def usable(self) -> bool:
        return self.cap_qty >= self.min_qty


@dataclass(slots=True)
class _Variant:
    """A venue whose child is ``base + k·unit`` for ``0 <= k <= cap_units``."""

    model: VenueModel
    unit: int
    base: int
    base_cost: int
    cap_units: int
    runs: list[Run] = field(repr=False)


class _Group:
    """Venues sharing one unit: the best cost of any total as a merge of their unit runs."""

    __slots__ = ("base", "base_cost", "cum_cost", "cum_units", "runs", "unit")

    def __init__(self, unit: int, members: Sequence[_Variant], need: int) -> None:
        self.unit = unit
        self.base = sum(m.base for m in members)
        self.base_cost = sum(m.base_cost for m in members)
        runs: list[Run] = []
        if need > 0 and members:
            # Each venue's runs are strictly increasing in cost (module doc), so sorting the
            # concatenation is their merge, with ties going to the lower venue index.
            runs = (members[0].runs if len(members) == 1
                    else sorted(chain.from_iterable(m.runs for m in members)))
        counts = list(map(itemgetter(2), runs))
        self.runs = runs
        self.cum_units = list(accumulate(counts))
        self.cum_cost = list(accumulate(map(mul, map(itemgetter(0), runs), counts)))

    def cost(self, total: int) -> int:
        """Best cost of ``total`` (a quantity: ``base`` plus whole units)."""
        x = (total - self.base) // self.unit
        if x <= 0:
            return self.base_cost
        i = bisect_left(self.cum_units, x)
        before_u = self.cum_units[i - 1] if i else 0
        before_c = self.cum_cost[i - 1] if i else 0
        return self.base_cost + before_c + (x - before_u) * self.runs[i][0]

    def split(self, total: int, members: Sequence[_Variant]) -> dict[int, int]:
        """Quantity per venue index for ``total``."""
        out = {m.model.vidx: m.base for m in members}
        x = (total - self.base) // self.unit
        for _, v, k in self.runs:
            if x <= 0:
                break
            t = k if k < x else x
            out[v] += t * self.unit
            x -= t
        return {v: q for v, q in out.items() if q}


def _solve(fine: Sequence[_Variant], gf: _Group | None, coarse: Sequence[_Variant], target: int
           ) -> tuple[int, int, dict[int, int]] | None:
    """Best (routed, cost, allocation) for venues whose children are fixed up to their units.

    ``gf`` is the fine venues' group, merged up to the target (shared by every residue
    combination); None when there are no fine venues.
    """
    sf = fine[0].unit if fine else 1
    sc = coarse[0].unit if coarse else 1
    lo_f = sum(m.base for m in fine)
    cap_f = sum(m.base + m.cap_units * sf for m in fine)
    lo_c = sum(m.base for m in coarse)
    cap_c = sum(m.base + m.cap_units * sc for m in coarse)
    # Every reachable total is congruent to lo_c modulo sf (sf divides sc and the fine bases).
    t_max = target - (target - lo_c) % sf if fine else target
    if coarse:
        room = min(cap_c, t_max - lo_f)
        if room < lo_c:
            return None
        tc = lo_c + (room - lo_c) // sc * sc  # the coarse group as large as it can be
    else:
        tc = 0
    tf = min(cap_f, t_max - tc) if fine else 0
    if tf < lo_f:
        return None
    routed = tc + tf
    if routed <= 0:
        return None
    if not coarse:
        assert gf is not None
        return routed, gf.cost(routed), gf.split(routed, fine)
    if not fine or gf is None:
        grp = _Group(sc, coarse, (routed - lo_c) // sc)
        return routed, grp.cost(routed), grp.split(routed, coarse)
    a_lo = max(0, -(-(routed - cap_f - lo_c) // sc))
    a_hi = (min(cap_c, routed - lo_f) - lo_c) // sc
    gc = _Group(sc, coarse, a_hi)

    def total(a: int) -> int:
        t = lo_c + a * sc
        return gc.cost(t) + gf.cost(routed - t)

    lo, hi = a_lo, a_hi
    while lo < hi:  # the smallest minimiser of a convex function of a
        mid = (lo + hi) // 2
        if total(mid + 1) >= total(mid):
            hi = mid
        else:
            lo = mid + 1
    tc = lo_c + lo * sc
    alloc = gc.split(tc, coarse)
    alloc.update(gf.split(routed - tc, fine))
    return routed, total(lo), alloc


@dataclass(frozen=True, slots=True)
class Solution:
    """The best allocation: quantity per venue index (size scale), its routed total and cost."""

    alloc: dict[int, int]
    routed: int
    cost: int
    exact: bool
    subsets: int  #: venue subsets solved (0: the greedy without minimums was already feasible)
    combos: int  #: residue combinations solved in all (1 per subset when the steps are equal)


class _Solver:
    def __init__(self, models: Sequence[VenueModel], target: int) -> None:
        self.target = target
        self.models = models
        steps = [m.step for m in models]
        self.fine = min(steps)
        self.unit = math.lcm(*steps)
        residues = {m.vidx: range(0, self.unit, m.step) for m in models if m.step != self.fine}
        self.exact = math.prod(len(r) for r in residues.values()) <= MAX_RESIDUE_COMBOS
        self.residues = residues if self.exact else {v: range(1) for v in residues}
        self.cache: dict[tuple[int, int, bool], _Variant | None] = {}
        self.combos = 0

    def variant(self, m: VenueModel, offset: int, forced: bool) -> _Variant | None:
        key = (m.vidx, offset, forced)
        if key in self.cache:
            return self.cache[key]
        unit = self.fine if m.step == self.fine else self.unit
        k_min = max(0, -(-(m.min_qty - offset) // unit)) if forced else 0
        base = offset + k_min * unit
        out = None
        if base <= m.cap_qty:
            cap_units = (m.cap_qty - base) // unit
            runs = unit_runs(m.prices, m.sizes, unit, m.factor, m.vidx,
                             min(cap_units, self.target // unit + 1), base)
            out = _Variant(m, unit, base, walk_cost(m.prices, m.sizes, base) * m.factor, cap_units, runs)
        self.cache[key] = out
        return out

    def best(self, venues: Sequence[VenueModel], forced: bool) -> tuple[int, int, dict[int, int]] | None:
        """Best over every residue combination of these venues (all trade if ``forced``)."""
        coarse = [m for m in venues if m.step != self.fine]
        fine_models = [m for m in venues if m.step == self.fine]
        fine: list[_Variant] = []
        for m in fine_models:
            v = self.variant(m, 0, forced)
            if v is None:
                return None
            fine.append(v)
        gf = _Group(self.fine, fine, self.target // self.fine + 1) if fine else None
        top: tuple[int, int, dict[int, int]] | None = None
        for offsets in product(*(self.residues[m.vidx] for m in coarse)):
            group: list[_Variant] = []
            for m, r in zip(coarse, offsets, strict=True):
                v = self.variant(m, r, forced)
                if v is None:
                    break
                group.append(v)
            else:
                self.combos += 1
                got = _solve(fine, gf, group, self.target)
                if got is not None and (top is None or (-got[0], got[1]) < (-top[0], top[1])):
                    top = got
        return top


def solve(models: Sequence[VenueModel], target: int) -> Solution:
    """The cheapest allocation of as much of ``target`` as the venues can take.

    Lexicographic objective: the largest routable total first, then the lowest cost, then the
    fewest venues (among subsets). See the module doc for why this is exact.
    """
    usable = [m for m in models if m.usable]
    if not usable:
        return Solution({}, 0, 0, True, 0, 0)
    sv = _Solver(usable, target)
    relaxed = sv.best(usable, False)
    if relaxed is None:
        return Solution({}, 0, 0, sv.exact, 0, sv.combos)
    by_idx = {m.vidx: m for m in usable}
    if all(q >= by_idx[v].min_qty for v, q in relaxed[2].items()):
        return Solution(relaxed[2], relaxed[0], relaxed[1], sv.exact, 0, sv.combos)
    best: tuple[int, int, int] | None = None  # (-routed, cost, venues)
    best_alloc: dict[int, int] = {}
    tried = 0
    for r in range(1, len(usable) + 1):
        for subset in combinations(usable, r):
            if sum(m.min_qty for m in subset) > target:
                continue
            tried += 1
            got = sv.best(subset, True)
            if got is None:
                continue
            key = (-got[0], got[1], r)
            if best is None or key < best:
                best, best_alloc = key, got[2]
    if best is None:
        return Solution({}, 0, 0, sv.exact, tried, sv.combos)
    return Solution(best_alloc, -best[0], best[1], sv.exact, tried, sv.combos)
