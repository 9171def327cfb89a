"""A query plan (EXPLAIN JSON) as a rich tree: the node that costs most in bold red."""
from __future__ import annotations

from collections.abc import Iterator

from rich.text import Text
from rich.tree import Tree


def _exclusive_ms(node: dict) -> float:
    total = (node.get("Actual Total Time") or 0.0) * (node.get("Actual Loops") or 1)
    children = sum((ch.get("Actual Total Time") or 0.0) * (ch.get("Actual Loops") or 1)
                   for ch in node.get("Plans", ()))
    return max(0.0, total - children)


def _walk(node: dict) -> Iterator[dict]:
    yield node
    for child in node.get("Plans", ()):
        yield from _walk(child)


def plan_tree(item) -> Tree:
    """The plan as a tree; the node that costs most (exclusive time, else cost) in bold red."""
    nodes = list(_walk(item.plan))
    timed = any(n.get("Actual Total Time") is not None for n in nodes)
    key = _exclusive_ms if timed else (lambda n: n.get("Total Cost", 0.0))
    worst = max(nodes, key=key)

    def label(node: dict) -> Text:
        parts = [node["Node Type"]]
        for k in ("Index Name", "Relation Name", "Join Type", "Strategy"):
            if node.get(k):
                parts.append(f"{k.split()[0].lower()}={node[k]}")
        stats = []
        if timed:
            stats.append(f"{_exclusive_ms(node):.3f} ms self")
            stats.append(f"rows {node.get('Actual Rows', 0):g}×{node.get('Actual Loops', 1):g}")
        else:
            stats.append(f"cost {node.get('Total Cost')}")
        if node.get("Shared Hit Blocks") is not None:
            stats.append(f"buffers hit {node['Shared Hit Blocks']} read {node.get('Shared Read Blocks', 0)}")
        if node.get("Filter"):
            stats.append(f"filter {node['Filter']}")
        if node.get("Index Cond"):
            stats.append(f"cond {node['Index Cond']}")
        text = Text(" ".join(parts), style="bold red" if node is worst else "bold")
        text.append("  " + " · ".join(stats), style="red" if node is worst else "dim")
        return text

    def add(tree: Tree, node: dict) -> None:
        branch = tree.add(label(node))
        for child in node.get("Plans", ()):
            add(branch, child)

    root = Tree(Text(f"{item.case} · {item.variant} · ran {item.calls}×  ", style="cyan")
                + Text(item.sql[:160] + ("…" if len(item.sql) > 160 else ""), style="dim"))
    add(root, item.plan)
    if getattr(item, "how", ""):
        root.add(Text(item.how, style="yellow" if not item.analyzed else "dim"))
    return root


