"""`graph`: a shortest path from a source to a target in a random graph, or "no path".

Path and no-path problems come from one construction, so that nothing on the surface tells them
apart (no isolated endpoint, the same endpoint degrees, the same edge count):

1. the n = `max` nodes are split at random into a source side S and a target side T, each of at
   least 2 nodes (2 + Binomial(n - 4, 1/2) nodes in S);
2. inside each side edges are drawn independently (G(k, p) on a side of k nodes, p = min(3/4,
   degree / (k - 1)), so a node's expected (out-)degree is `degree`; the 3/4 cap keeps non-edges on
   tiny sides). Directed graphs also get edges from T back to S with p = min(3/4, degree / (n - 1)).
   No edge goes from S to T;
3. the source s is a uniform node of S that reaches another node of S, u a uniform node it reaches;
   the target t is a uniform node of T reached from another node of T, v a uniform node reaching it.
   So neither endpoint is ever isolated, in either kind of problem;
4. a coin with probability `no_path_share` (default 0.25) decides the kind. A path problem adds the
   bridge u -> v (undirected: u - v), the only edge from S to T, so every path crosses it. A no-path
   problem adds instead one uniform missing edge inside a side that touches neither s nor t, so both
   kinds have the same number of edges and the same endpoint degrees. Draws where no such edge
   exists are redrawn for both kinds alike. (At n = 4 none ever would: both sides have 2 nodes,
   so the smallest graph has 5 nodes.)

The edge count is capped at `max_edges` (mean + 4 standard deviations at the worst side sizes;
larger draws, about one in 30,000, are redrawn for both kinds alike). Node labels carry no side:
the split is a uniform random subset.

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

import bisect
import math
from dataclasses import dataclass
from typing import Any

import networkx as nx
import numpy as np

from tasks.base import PAD, TRACE_PAD, Batch, Task, TaskError, is_int
from tasks.graph_search import bfs_layers, path_from_parents, reachable
from tasks.registry import register_task
from tasks.surface import graph_rules

MIN_NODES, MAX_NODES = 5, 128  # two sides of at least 2 nodes, and a spare pair inside one of them
MIN_DEGREE, MAX_DEGREE = 0.5, 8.0
MAX_EDGE_PROBABILITY = 0.75  # tiny dense sides keep non-edges for a no-path problem's extra edge
# Redrawn graphs per wanted problem before giving up (a guard: valid parameters need a few at most).
_MAX_REDRAWS_PER_PROBLEM = 400


@dataclass(frozen=True)
class GraphParams:
    max: int = 8
    """Number of nodes n."""
    degree: float = 2.0
    """Expected (out-)degree of a node inside its side: p = min(3/4, degree / (side size - 1))."""
    directed: bool = False
    """Directed edges (u -> v) instead of undirected ones."""
    no_path_share: float = 0.25
    """Share of problems whose target is unreachable from the source."""


MAX_JSON_NODES = 1_000_000  # bound on structured problems read by `bench verify`


@register_task("graph")
class GraphTask(Task):
    Params = GraphParams
    scale_param = "max"
    scale_help = "number of nodes n"
    difficulty_help = (
        "max (nodes) drives serial depth: BFS layers grow with n; degree sets density; "
        "no_path_share sets the answer mix (the majority floor)"
    )
    param_help = {
        "max": "number of nodes n (the scale)",
        "degree": "expected (out-)degree of a node inside its side (the graph's density)",
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
        self._pair_index = np.full((n, n), -1, dtype=np.int64)
        self._pair_index[us, vs] = np.arange(len(us))
        if not params.directed:
            self._pair_index[vs, us] = np.arange(len(us))
        # Edge probability inside a side of k nodes (index k), and from the target's side back.
        self._side_p = np.array([0.0]
                                + [min(MAX_EDGE_PROBABILITY, params.degree / max(k - 1, 1)) for k in range(1, n + 1)])
        self._back_p = min(MAX_EDGE_PROBABILITY, params.degree / (n - 1)) if params.directed else 0.0
        self._max_edges = self._edge_cap()

    def _edge_cap(self) -> int:
        """Mean + 4 standard deviations of the edge count at the worst split, plus the added edge."""
        n, directed = self.params.max, self.params.directed
        worst = 0
        for a in range(2, n - 1):
            mean = var = 0.0
            for k in (a, n - a):
                pairs, p = (k * (k - 1) if directed else k * (k - 1) // 2), self._side_p[k]
                mean, var = mean + pairs * p, var + pairs * p * (1 - p)
            if directed:
                mean, var = mean + a * (n - a) * self._back_p, var + a * (n - a) * self._back_p * (1 - self._back_p)
            worst = max(worst, math.ceil(mean + 4 * math.sqrt(var) + 1))
        return min(len(self._pair_u), worst + 1)

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
        # Draws in chunks: a round's random edge matrix holds chunk x pairs floats.
        chunk = max(16, 4_000_000 // len(self._pair_u))
        redrawn = 0
        while len(pending):
            if redrawn > _MAX_REDRAWS_PER_PROBLEM * n + 1000:
                raise TaskError(
                    f"graph: could not draw problems at max={nodes}, degree={self.params.degree}; raise max")
            # One round: a fresh split, graph and choices for the next problems still unfilled.
            k = min(len(pending), chunk)
            source_side_size = 2 + rng.binomial(nodes - 4, 0.5, size=k)
            ranks = np.argsort(rng.random((k, nodes)), axis=1).argsort(axis=1)
            in_source_side = ranks < source_side_size[:, None]
            edge_masks = rng.random((k, len(self._pair_u))) < self._pair_probabilities(in_source_side, source_side_size)
            choices = rng.random((k, 5))
            still = []
            for j, slot in enumerate(pending[:k].tolist()):
                problem = self._draw_problem(edge_masks[j], in_source_side[j], bool(has_path[slot]), choices[j])
                if problem is None:
                    still.append(slot)
                    continue
                edge_u, edge_v, source, target, adjacency = problem
                layers, parent = bfs_layers(adjacency, source, target)
                path = path_from_parents(parent, target) if parent[target] != -1 else None
                if (path is not None) != bool(has_path[slot]):
                    raise RuntimeError("graph: a problem of the wrong kind; a bug in tasks/graph.py")
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
            redrawn += len(still)
            pending = np.concatenate([np.asarray(still, dtype=np.int64), pending[k:]])
        meta = {"size": size, "depth": depth, "has_path": has_path.astype(np.int64)}
        return Batch(questions, answers, traces, meta)

    def _pair_probabilities(self, in_source_side: np.ndarray, source_side_size: np.ndarray) -> np.ndarray:
        """(k, pairs) edge probabilities: p of the side inside each side, back edges T -> S, none S -> T."""
        # Pair kind 0: both in T, 1: T -> S, 2: S -> T, 3: both in S.
        kind = (in_source_side[:, self._pair_u].astype(np.int8) << 1) | in_source_side[:, self._pair_v]
        table = np.zeros((len(source_side_size), 4))
        table[:, 0] = self._side_p[self.params.max - source_side_size]
        table[:, 1] = self._back_p
        table[:, 3] = self._side_p[source_side_size]
        return np.take_along_axis(table, kind.astype(np.int64), axis=1)

    def _adjacency(self, edge_u: list[int], edge_v: list[int]) -> list[list[int]]:
        adjacency: list[list[int]] = [[] for _ in range(self.params.max)]
        for u, v in zip(edge_u, edge_v):
            adjacency[u].append(v)
            if not self.params.directed:
                adjacency[v].append(u)
        for neighbours in adjacency:
            neighbours.sort()
        return adjacency

    def _draw_problem(
        self, mask: np.ndarray, in_source_side: np.ndarray, want_path: bool, choice: np.ndarray
    ) -> tuple[list[int], list[int], int, int, list[list[int]]] | None:
        """Edges, endpoints and adjacency (the added edge included) for one drawn split and inside
        graph, or None to redraw."""
        if mask.sum() > self._max_edges - 1:
            return None
        edge_u, edge_v = self._pair_u[mask].tolist(), self._pair_v[mask].tolist()
        forward = self._adjacency(edge_u, edge_v)
        backward = forward if not self.params.directed else self._adjacency(edge_v, edge_u)
        side_s = [x for x in range(self.params.max) if in_source_side[x]]
        side_t = [x for x in range(self.params.max) if not in_source_side[x]]
        # No edge leaves S towards T, so whatever s reaches is in S and whatever reaches t is in T.
        sources = [x for x in side_s if forward[x]]
        targets = [x for x in side_t if backward[x]]
        if not sources or not targets:
            return None
        source = sources[int(choice[0] * len(sources))]
        target = targets[int(choice[1] * len(targets))]
        reached = sorted(reachable(forward, source) - {source})
        reaching = sorted(reachable(backward, target) - {target})
        u, v = reached[int(choice[2] * len(reached))], reaching[int(choice[3] * len(reaching))]
        # The no-path problem's extra edge: missing, inside a side, touching neither endpoint.
        pair_u, pair_v = self._pair_u, self._pair_v
        same_side = in_source_side[pair_u] == in_source_side[pair_v]
        off_endpoints = (pair_u != source) & (pair_u != target) & (pair_v != source) & (pair_v != target)
        extra = np.flatnonzero(same_side & off_endpoints & ~mask)
        if not len(extra):
            return None  # redrawn whichever kind was wanted, so both kinds see the same graphs
        added = self._pair_index[u, v] if want_path else extra[int(choice[4] * len(extra))]
        a, b = int(self._pair_u[added]), int(self._pair_v[added])
        bisect.insort(forward[a], b)
        if not self.params.directed:
            bisect.insort(forward[b], a)
        mask = mask.copy()
        mask[added] = True
        return self._pair_u[mask].tolist(), self._pair_v[mask].tolist(), source, target, forward

    def surface_floors(self, train: Batch, test: Batch) -> list[tuple[str, np.ndarray, str]]:
        """Shortcut floors (`bench floors`): an isolated or dead endpoint, a logistic regression on degrees."""
        return graph_rules(self, train, test)

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
        loop = next((e for e in edges if e[0] == e[1]), None)
        if loop is not None:
            raise TaskError(f"graph: edge {loop} is a self-loop; a graph problem's edges join two distinct nodes")
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


