"""`graph`: a shortest path from a source to a target in a random graph, or "no path".

Graphs are Erdős–Rényi G(n, p) on n = `max` nodes, with p = min(1, degree / (n - 1)) so that a
node's expected (out-)degree is `degree` at every scale; `directed` picks directed or undirected
edges. The edge count is capped at `max_edges` (mean + 4 standard deviations; larger draws, about
one in 30,000, are redrawn). Per problem a coin with probability `no_path_share` (default 0.25)
decides the kind of problem:

- path problems: the source is a uniform node with an outgoing edge, the target a uniform node
  reachable from it;
- no-path problems: the source is a uniform node, the target a uniform node it cannot reach. Where
  G(n, p) rarely leaves any node unreachable (tiny n, high degree; at the default degree 2 with
  n = 3, p = 1 and every graph is a triangle), after 8 redrawn graphs a cut is planted instead: the
  nodes are split at random into a side with the source and a side with the target, and the edges
  from the source's side to the target's side are removed. At degree 2 that happens for every
  no-path problem at n = 3, about a quarter at n = 4, 0.2% at n = 8 and none at n >= 16; at
  degree 8 for nearly all of them up to n = 64.

Serial depth: the number of BFS layers expanded, which is the shortest path's length (in edges)
for path problems and the source's eccentricity inside what it can reach for no-path problems.
Size: the number of edges.

Tokens (vocab n + 2): PAD=0, node v is token v + 1, NO_PATH = n + 1.
Question (2 * max_edges + 2 tokens): the edges as (u, v) token pairs in lexicographic order
(undirected edges written with u < v), padded with PAD pairs to max_edges, then source, target.
Answer (n tokens): the path's nodes from source to target, then PAD; or NO_PATH, then PAD.

Reference trace: layered BFS (`bfs_layers`, CLRS-shaped: it appends each frontier it expands).
Trace tokens (vocab n + 2): TRACE_PAD=0, node v is v + 1, END_LAYER = n + 1 after each frontier.
The trace is frontier 0 (the source), frontier 1, ..., up to and including the frontier where the
target is discovered; when there is no path the last frontier is empty (a lone END_LAYER).
Within a frontier nodes appear in discovery order, neighbours being scanned in ascending order;
the reference answer is the path through the BFS parent pointers. trace_len = 2n: at most n nodes
in at most n frontiers (a no-path trace: at most n - 1 nodes, n - 1 frontiers and the empty one).
As JSON the trace is the list of frontiers, e.g. [[2], [0, 5], [7]], or with no path [[2], [0], []].
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import networkx as nx
import numpy as np

from tasks.base import PAD, TRACE_PAD, Batch, Task, TaskError, is_int
from tasks.registry import register_task

MIN_NODES, MAX_NODES = 3, 128
MIN_DEGREE, MAX_DEGREE = 0.5, 8.0
# Redrawn graphs before a no-path problem falls back to a planted cut.
_NATURAL_NO_PATH_ROUNDS = 8


@dataclass(frozen=True)
class GraphParams:
    max: int = 8
    """Number of nodes n."""
    degree: float = 2.0
    """Expected (out-)degree of a node: G(n, p) with p = degree / (n - 1)."""
    directed: bool = False
    """Directed edges (u -> v) instead of undirected ones."""
    no_path_share: float = 0.25
    """Share of problems whose target is unreachable from the source."""


def bfs_layers(adjacency: list[list[int]], source: int, target: int) -> tuple[list[list[int]], list[int]]:
    """Layered breadth-first search from `source`, stopping at the frontier that holds `target`.

    Returns the frontiers (the last one empty when `target` is unreachable) and the parent array
    (-1 where undiscovered). `adjacency[u]` must list u's out-neighbours in ascending order.
    """
    parent = [-1] * len(adjacency)
    parent[source] = source
    frontier = [source]
    layers = [frontier]
    while frontier and target not in frontier:
        next_frontier = []
        for u in frontier:
            for v in adjacency[u]:
                if parent[v] == -1:
                    parent[v] = u
                    next_frontier.append(v)
        frontier = next_frontier
        layers.append(frontier)
    return layers, parent


def path_from_parents(parent: list[int], target: int) -> list[int]:
    path = [target]
    while parent[path[-1]] != path[-1]:
        path.append(parent[path[-1]])
    return path[::-1]


MAX_JSON_NODES = 1_000_000  # bound on structured problems read by `bench verify`


@register_task("graph")
class GraphTask(Task):
    Params = GraphParams
    scale_param = "max"
    scale_help = "number of nodes n"
    param_help = {
        "max": "number of nodes n (the scale)",
        "degree": "expected (out-)degree of a node; p = degree / (n - 1)",
        "directed": "directed edges instead of undirected",
        "no_path_share": "share of problems with no path (answer NO_PATH)",
    }

    def __init__(self, params: GraphParams) -> None:
        super().__init__(params)
        n = params.max
        # All candidate edges, in the lexicographic order the question lists them in.
        if params.directed:
            us, vs = np.nonzero(~np.eye(n, dtype=bool))
        else:
            us, vs = np.triu_indices(n, k=1)
        self._pair_u, self._pair_v = us.astype(np.int64), vs.astype(np.int64)
        pairs = len(us)
        self._p = min(1.0, params.degree / (n - 1))
        mean = pairs * self._p
        spread = math.sqrt(pairs * self._p * (1 - self._p))
        self._max_edges = min(pairs, math.ceil(mean + 4 * spread + 1))

    def validate(self) -> None:
        p = self.params
        if isinstance(p.max, bool) or not isinstance(p.max, int) or not MIN_NODES <= p.max <= MAX_NODES:
            raise TaskError(f"graph: max={p.max!r} out of range; valid: {MIN_NODES}..{MAX_NODES}")
        if not isinstance(p.degree, (int, float)) or not MIN_DEGREE <= p.degree <= MAX_DEGREE:
            raise TaskError(f"graph: degree={p.degree!r} out of range; valid: {MIN_DEGREE}..{MAX_DEGREE}")
        if not isinstance(p.directed, bool):
            raise TaskError(f"graph: directed={p.directed!r} is not a bool; valid: true, false")
        if not isinstance(p.no_path_share, (int, float)) or not 0.0 <= p.no_path_share <= 1.0:
            raise TaskError(f"graph: no_path_share={p.no_path_share!r} out of range; valid: 0..1")

    # ---- shapes and vocabularies ------------------------------------------------------------
    @property
    def no_path_token(self) -> int:
        return self.params.max + 1

    @property
    def end_layer_token(self) -> int:
        return self.params.max + 1

    @property
    def max_edges(self) -> int:
        return self._max_edges

    @property
    def vocab_size(self) -> int:
        return self.params.max + 2

    @property
    def question_len(self) -> int:
        return 2 * self._max_edges + 2

    @property
    def answer_len(self) -> int:
        return self.params.max

    @property
    def trace_vocab_size(self) -> int:
        return self.params.max + 2

    @property
    def trace_len(self) -> int:
        return 2 * self.params.max

    # ---- generation -------------------------------------------------------------------------
    def generate(self, rng: np.random.Generator, n: int) -> Batch:
        nodes = self.params.max
        questions = np.zeros((n, self.question_len), dtype=np.int64)
        answers = np.zeros((n, self.answer_len), dtype=np.int64)
        traces = np.zeros((n, self.trace_len), dtype=np.int64)
        size = np.zeros(n, dtype=np.int64)
        depth = np.zeros(n, dtype=np.int64)
        has_path = rng.random(n) >= self.params.no_path_share

        pending = np.arange(n)
        attempt = 0
        while len(pending):
            # One round: a fresh graph and fresh choices for every problem still unfilled.
            k = len(pending)
            edge_masks = rng.random((k, len(self._pair_u))) < self._p
            choices = rng.random((k, 2))
            sides = rng.random((k, nodes)) < 0.5
            plant_cut = attempt >= _NATURAL_NO_PATH_ROUNDS
            still = []
            for j, slot in enumerate(pending.tolist()):
                mask = edge_masks[j]
                if mask.sum() > self._max_edges:
                    problem = None
                elif plant_cut and not has_path[slot]:
                    problem = self._planted_no_path(mask, choices[j], sides[j])
                else:
                    problem = self._natural_problem(mask, bool(has_path[slot]), choices[j])
                if problem is None:
                    still.append(slot)
                    continue
                edge_u, edge_v, source, target = problem
                layers, path = self._solve(edge_u, edge_v, source, target)
                m = len(edge_u)
                questions[slot, 0 : 2 * m : 2] = np.asarray(edge_u) + 1
                questions[slot, 1 : 2 * m : 2] = np.asarray(edge_v) + 1
                questions[slot, -2:] = (source + 1, target + 1)
                if path is None:
                    answers[slot, 0] = self.no_path_token
                else:
                    answers[slot, : len(path)] = np.asarray(path) + 1
                trace = [token for layer in layers for token in [v + 1 for v in layer] + [self.end_layer_token]]
                traces[slot, : len(trace)] = trace
                size[slot] = m
                depth[slot] = sum(1 for layer in layers[1:] if layer)
            pending = np.asarray(still, dtype=np.int64)
            attempt += 1
        meta = {"size": size, "depth": depth, "has_path": has_path.astype(np.int64)}
        return Batch(questions, answers, traces, meta)

    def _adjacency(self, edge_u: list[int], edge_v: list[int]) -> list[list[int]]:
        adjacency: list[list[int]] = [[] for _ in range(self.params.max)]
        for u, v in zip(edge_u, edge_v):
            adjacency[u].append(v)
            if not self.params.directed:
                adjacency[v].append(u)
        for neighbours in adjacency:
            neighbours.sort()
        return adjacency

    def _natural_problem(
        self, mask: np.ndarray, want_path: bool, choice: np.ndarray
    ) -> tuple[list[int], list[int], int, int] | None:
        """Source and target of the wanted kind in this G(n, p) graph, or None to redraw it."""
        edge_u, edge_v = self._pair_u[mask].tolist(), self._pair_v[mask].tolist()
        adjacency = self._adjacency(edge_u, edge_v)
        if want_path:
            starts = [u for u in range(self.params.max) if adjacency[u]]
            if not starts:
                return None
            source = starts[int(choice[0] * len(starts))]
        else:
            source = int(choice[0] * self.params.max)
        layers, parent = bfs_layers(adjacency, source, -1)  # full search: everything reachable
        if want_path:
            targets = [v for layer in layers[1:] for v in layer]
        else:
            targets = [v for v in range(self.params.max) if parent[v] == -1]
        if not targets:
            return None
        targets.sort()
        return edge_u, edge_v, source, targets[int(choice[1] * len(targets))]

    def _planted_no_path(
        self, mask: np.ndarray, choice: np.ndarray, sides: np.ndarray
    ) -> tuple[list[int], list[int], int, int]:
        """A no-path problem by construction: drop the edges from the source's side of a random cut."""
        nodes = self.params.max
        source = int(choice[0] * nodes)
        target = (source + 1 + int(choice[1] * (nodes - 1))) % nodes
        target_side = sides.copy()
        target_side[source], target_side[target] = False, True
        u_side, v_side = target_side[self._pair_u], target_side[self._pair_v]
        crossing = (~u_side & v_side) if self.params.directed else (u_side != v_side)
        keep = mask & ~crossing
        return self._pair_u[keep].tolist(), self._pair_v[keep].tolist(), source, target

    def _solve(
        self, edge_u: list[int], edge_v: list[int], source: int, target: int
    ) -> tuple[list[list[int]], list[int] | None]:
        layers, parent = bfs_layers(self._adjacency(edge_u, edge_v), source, target)
        path = path_from_parents(parent, target) if parent[target] != -1 else None
        return layers, path

    # ---- structured form -------------------------------------------------------------------
    def problem_json(self, question: np.ndarray) -> dict[str, Any]:
        pairs = question[:-2].reshape(-1, 2)
        edges = [[int(u) - 1, int(v) - 1] for u, v in pairs if u != PAD]
        return {
            "nodes": self.params.max,
            "edges": edges,
            "directed": self.params.directed,
            "source": int(question[-2]) - 1,
            "target": int(question[-1]) - 1,
        }

    def answer_json(self, answer: np.ndarray) -> Any:
        tokens = [int(t) for t in answer]
        if tokens and tokens[0] == self.no_path_token:
            if any(t != PAD for t in tokens[1:]):
                raise ValueError("NO_PATH followed by more tokens")
            return None
        length = tokens.index(PAD) if PAD in tokens else len(tokens)
        path, rest = tokens[:length], tokens[length:]
        if any(t != PAD for t in rest):
            raise ValueError("path tokens after PAD")
        if not all(1 <= t <= self.params.max for t in path):
            raise ValueError("a path token is not a node")
        return [t - 1 for t in path]

    def trace_json(self, trace: np.ndarray) -> list[Any]:
        layers: list[list[int]] = [[]]
        for token in (int(t) for t in trace if t != TRACE_PAD):
            if token == self.end_layer_token:
                layers.append([])
            else:
                layers[-1].append(token - 1)
        return layers[:-1]  # every frontier ends in END_LAYER, so the last list is the unused tail

    def check_problem_json(self, problem: dict[str, Any]) -> None:
        nodes = problem.get("nodes")
        if not is_int(nodes) or not 1 <= nodes <= MAX_JSON_NODES:
            raise TaskError(f"graph: 'nodes' must be an integer in 1..{MAX_JSON_NODES}, got {nodes!r}")
        directed = problem.get("directed")
        if not isinstance(directed, bool):
            raise TaskError(f"graph: 'directed' must be true or false, got {directed!r}")
        edges = problem.get("edges")
        if not isinstance(edges, list) or not all(
            isinstance(e, list) and len(e) == 2 and all(is_int(x) and 0 <= x < nodes for x in e) for e in edges
        ):
            raise TaskError(f"graph: 'edges' must be a list of [u, v] pairs of nodes in 0..{nodes - 1}")
        for key in ("source", "target"):
            value = problem.get(key)
            if not is_int(value) or not 0 <= value < nodes:
                raise TaskError(f"graph: '{key}' must be a node in 0..{nodes - 1}, got {value!r}")

    def verify_json(self, problem: dict[str, Any], answer: Any) -> bool:
        graph = nx.DiGraph() if problem["directed"] else nx.Graph()
        source, target = problem["source"], problem["target"]
        # Only nodes that occur matter for reachability; adding range(nodes) would let a JSONL line
        # with a huge node count exhaust memory.
        graph.add_nodes_from((source, target))
        graph.add_edges_from(tuple(edge) for edge in problem["edges"])
        reachable = nx.has_path(graph, source, target)
        if answer is None:
            return not reachable
        if not isinstance(answer, list) or not answer or not all(is_int(v) for v in answer):
            return False
        if not reachable or answer[0] != source or answer[-1] != target:
            return False
        if not all(graph.has_edge(u, v) for u, v in zip(answer, answer[1:])):
            return False
        return len(answer) - 1 == nx.shortest_path_length(graph, source, target)

    def render(self, question: np.ndarray, answer: np.ndarray, trace: np.ndarray | None = None) -> str:
        problem = self.problem_json(question)
        arrow = "->" if self.params.directed else "-"
        kind = "directed" if self.params.directed else "undirected"
        edges = " ".join(f"{u}{arrow}{v}" for u, v in problem["edges"]) or "(no edges)"
        try:
            shown = self.answer_json(answer)
            answer_text = "no path" if shown is None else " ".join(map(str, shown)) or "?"
        except ValueError:
            answer_text = "? (malformed)"
        text = (
            f"{kind} graph, {problem['nodes']} nodes: {edges}\n"
            f"shortest path from {problem['source']} to {problem['target']}: {answer_text}"
        )
        if trace is not None:
            frontiers = " | ".join(" ".join(map(str, layer)) or "(empty)" for layer in self.trace_json(trace))
            text += f"\ntrace (BFS frontiers): {frontiers}"
        return text


