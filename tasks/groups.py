"""Finite groups as permutation groups, for `perm` (the word problem of a finite group).

A group is named as in the literature: `Sn` (symmetric, n = 2..6), `An` (alternating, n = 3..6),
`Zn` (cyclic, n = 2..1000) and direct products of these joined by `x` (`A4xZ5`). Every group is
built as a set of permutations of a few points, so one composition rule serves all of them:

- `Sn`, `An`: permutations of n points in lexicographic order of their array forms (identity first).
- `Zn`: powers of one permutation made of a cycle per prime power of n (Z60 = Z4 x Z3 x Z5 acts on
  4 + 3 + 5 = 12 points); element r is the r-th power, so element r + s = element (r + s) mod n.
- `GxH`: G acting on the first points, H on the next ones; elements in lexicographic order of
  their factors' indices (identity first).

An element is a tuple `p` of images: p[i] is where point i goes. Products apply left to right, as a
word is read: `x y` first applies x, then y, so (x y)[i] = y[x[i]]. `Group.table[a, b]` is the
index of the product of elements a and b (a numpy lookup table: the generators fold whole batches).
"""

from __future__ import annotations

import functools
import itertools
import math
import re
from dataclasses import dataclass

import numpy as np

from tasks.base import TaskError

MAX_ORDER = 1000
SYMMETRIC_RANGE = (2, 6)
ALTERNATING_RANGE = (3, 6)
CYCLIC_RANGE = (2, MAX_ORDER)
GROUP_HELP = (
    "Sn (n=2..6), An (n=3..6), Zn (n=2..1000), or a direct product such as A4xZ5; "
    f"order at most {MAX_ORDER}"
)

Perm = tuple[int, ...]


def compose(first: Perm, then: Perm) -> Perm:
    """`first` then `then`: point i goes to then[first[i]]."""
    return tuple(then[image] for image in first)


def is_even(perm: Perm) -> bool:
    """Even permutation: an even number of transpositions, i.e. n minus its cycle count is even."""
    seen, cycles = set(), 0
    for start in range(len(perm)):
        if start not in seen:
            cycles += 1
            point = start
            while point not in seen:
                seen.add(point)
                point = perm[point]
    return (len(perm) - cycles) % 2 == 0


def prime_power_factors(n: int) -> list[int]:
    """n as a product of prime powers, ascending by prime: 60 -> [4, 3, 5]."""
    factors, p = [], 2
    while p * p <= n:
        if n % p == 0:
            power = 1
            while n % p == 0:
                n, power = n // p, power * p
            factors.append(power)
        p += 1
    if n > 1:
        factors.append(n)
    return factors


def cyclic_elements(n: int) -> list[Perm]:
    """Z_n as powers of a product of disjoint cycles, one per prime power of n (CRT: the product of
    cycles of coprime lengths has order n)."""
    lengths = prime_power_factors(n)
    offsets = np.cumsum([0] + lengths[:-1])
    elements = []
    for r in range(n):  # the r-th power turns each cycle by r
        elements.append(tuple(int(o) + (i + r) % length for o, length in zip(offsets, lengths) for i in range(length)))
    return elements


def direct_product(left: list[Perm], right: list[Perm]) -> list[Perm]:
    """G x H on disjoint points: G moves the first len(g) points, H the next ones."""
    shift = len(left[0])
    return [g + tuple(shift + image for image in h) for g in left for h in right]


@dataclass(frozen=True)
class Group:
    """A finite group as permutations: `elements[i]` is element i (0 = the identity)."""

    name: str
    elements: tuple[Perm, ...]
    table: np.ndarray  # (order, order): table[a, b] = index of (a then b)
    index: dict[Perm, int]

    @property
    def order(self) -> int:
        return len(self.elements)

    @property
    def degree(self) -> int:
        """Number of points the permutations move."""
        return len(self.elements[0])

    @property
    def abelian(self) -> bool:
        return bool(np.array_equal(self.table, self.table.T))

    @property
    def solvable(self) -> bool:
        """Solvable: the derived series (commutator subgroups) reaches the trivial group."""
        current = set(range(self.order))
        inverse = {a: int(np.flatnonzero(self.table[a] == 0)[0]) for a in range(self.order)}
        while len(current) > 1:
            commutators = {
                int(self.table[self.table[inverse[a], inverse[b]], self.table[a, b]])
                for a in current for b in current
            }
            derived = self._closure(commutators)
            if derived == current:
                return False
            current = derived
        return True

    def _closure(self, generators: set[int]) -> set[int]:
        closed, frontier = {0}, {0}
        while frontier:
            frontier = {int(self.table[a, g]) for a in frontier for g in generators} - closed
            closed |= frontier
        return closed

    def element_name(self, i: int) -> str:
        """Element i as a person reads it: an integer for Zn, cycle notation (e = identity) else."""
        cyclic = re.fullmatch(r"Z(\d+)", self.name)
        if cyclic:
            return str(i)
        return cycle_notation(self.elements[i])


def cycle_notation(perm: Perm) -> str:
    """(0 1 2)(3 4); fixed points left out; the identity is e."""
    seen, cycles = set(), []
    for start in range(len(perm)):
        if start in seen or perm[start] == start:
            seen.add(start)
            continue
        cycle, point = [], start
        while point not in seen:
            seen.add(point)
            cycle.append(point)
            point = perm[point]
        cycles.append("(" + " ".join(map(str, cycle)) + ")")
    return "".join(cycles) or "e"


def factor_elements(name: str) -> tuple[list[Perm], np.ndarray]:
    """The elements of one factor (Sn, An or Zn), identity first, and its product table; TaskError
    if the name is not one."""
    match = re.fullmatch(r"([SAZ])(\d{1,4})", name)  # at most 4 digits: never a huge int() to parse
    if not match:
        raise TaskError(f"perm: group={name!r} is not valid; valid: {GROUP_HELP}")
    kind, n = match.group(1), int(match.group(2))
    low, high = {"S": SYMMETRIC_RANGE, "A": ALTERNATING_RANGE, "Z": CYCLIC_RANGE}[kind]
    if not low <= n <= high:
        raise TaskError(f"perm: group={name!r} out of range; valid: {GROUP_HELP}")
    if kind == "Z":
        powers = np.arange(n)
        return cyclic_elements(n), (powers[:, None] + powers[None, :]) % n  # g^a g^b = g^(a+b)
    perms = list(itertools.permutations(range(n)))  # lexicographic: the identity comes first
    if kind == "A":
        perms = [p for p in perms if is_even(p)]
    return perms, permutation_table(perms)


def permutation_table(perms: list[Perm]) -> np.ndarray:
    """table[a, b] = index of (a then b), for perms sorted lexicographically (numpy: S6 in ms)."""
    array = np.array(perms, dtype=np.int64)  # (N, d)
    degree = array.shape[1]
    weights = degree ** np.arange(degree - 1, -1, -1, dtype=np.int64)
    keys = array @ weights  # lexicographic order of the array forms = ascending keys
    table = np.empty((len(perms), len(perms)), dtype=np.int64)
    for a in range(len(perms)):
        products = array[:, array[a]]  # row b: b[a[i]], i.e. a then b
        table[a] = np.searchsorted(keys, products @ weights)
    return table


def group_order(name: str) -> int:
    """The order the name asks for, computed before any element is listed (0 if not a valid name)."""
    order = 1
    for factor in name.split("x"):
        match = re.fullmatch(r"([SAZ])(\d{1,4})", factor)
        if not match:
            return 0
        kind, n = match.group(1), int(match.group(2))
        order *= n if kind == "Z" else math.factorial(min(n, 7)) // (2 if kind == "A" else 1)
    return order


@functools.lru_cache(maxsize=32)
def make_group(name: str) -> Group:
    """The group called `name` (see the module docstring), built once per process."""
    if not isinstance(name, str) or not name:
        raise TaskError(f"perm: group={name!r} is not valid; valid: {GROUP_HELP}")
    order = group_order(name)
    if order == 0:
        raise TaskError(f"perm: group={name!r} is not valid; valid: {GROUP_HELP}")
    if order > MAX_ORDER:
        raise TaskError(f"perm: group={name!r} has order {order}, more than {MAX_ORDER}; valid: {GROUP_HELP}")
    factors = name.split("x")
    elements, table = factor_elements(factors[0])
    for factor in factors[1:]:
        right, right_table = factor_elements(factor)
        h = len(right)
        elements = direct_product(elements, right)
        # (a1, a2)(b1, b2) = (a1 b1, a2 b2); element (i, j) has index i * h + j
        table = (table[:, None, :, None] * h + right_table[None, :, None, :]).reshape(len(elements), len(elements))
    index = {perm: i for i, perm in enumerate(elements)}
    return Group(name, tuple(elements), np.ascontiguousarray(table, dtype=np.int64), index)
