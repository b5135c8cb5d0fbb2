"""The `graph` task's searches: layered BFS (the reference trace and answer) and plain reachability
(the generator's check that a no-path problem stays without a path)."""

from __future__ import annotations


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


def reachable(adjacency: list[list[int]], start: int) -> set[int]:
    """Every node reachable from `start` (itself included)."""
    seen, stack = {start}, [start]
    while stack:
        for y in adjacency[stack.pop()]:
            if y not in seen:
                seen.add(y)
                stack.append(y)
    return seen


def path_from_parents(parent: list[int], target: int) -> list[int]:
    """The path from the search's source to `target` through BFS parent pointers."""
    path = [target]
    while parent[path[-1]] != path[-1]:
        path.append(parent[path[-1]])
    return path[::-1]
