"""Pictures of a lineage graph people can paste into docs: Mermaid flowcharts and Graphviz DOT.

Arrows point from parent to child (base -> fine-tune -> adapter -> ...), labelled with the
child's relation; each node shows its name, the first 12 hex of its root digest and its state.
Every label is escaped for its language, since names and URIs come from claims.
"""

from __future__ import annotations

import re

from modelsign.lineage._model import LineageGraph, LineageNode

__all__ = ["dot", "mermaid"]

_COLORS = {  # state -> (fill, border)
    "verified": ("#d4edda", "#1e7e34"),
    "identity_not_allowed": ("#fff3cd", "#b8860b"),
    "unsigned": ("#fff3cd", "#b8860b"),
    "digest_mismatch": ("#f8d7da", "#b21f2d"),
    "unresolved": ("#e2e3e5", "#6c757d"),
    "claim_invalid": ("#f8d7da", "#b21f2d"),
}


def _ids(graph: LineageGraph) -> dict[str, str]:
    return {n.key: f"n{i}" for i, n in enumerate(graph.all_nodes)}


def _lines(node: LineageNode) -> list[str]:
    title = node.name or node.uri or node.key
    lines = [title[:80]]
    if node.uri and node.uri != title:
        lines.append(node.uri[:80])
    lines.append(f"sha256:{node.digest[:12]}" if node.digest else node.key[:80])
    lines.append(node.state.replace("_", " "))
    return lines


_MERMAID_UNSAFE = re.compile(r'["<>&#\\`{}\[\]|]')


def _mermaid_text(text: str) -> str:
    # Mermaid entity codes (#quot; ...) keep quotes and brackets from ending the label.
    return _MERMAID_UNSAFE.sub(lambda m: f"#{ord(m.group(0))};", text)


def mermaid(graph: LineageGraph) -> str:
    """A Mermaid flowchart, top-down: parents above their children."""
    ids = _ids(graph)
    out = ["flowchart TD"]
    for n in graph.all_nodes:
        label = "<br/>".join(_mermaid_text(x) for x in _lines(n))
        out.append(f'    {ids[n.key]}["{label}"]')
    for e in graph.edges:
        label = _mermaid_text(e.label + (" (cycle)" if e.cycle else ""))
        arrow = "-.->" if e.cycle else "-->"
        out.append(f'    {ids[e.parent]} {arrow}|"{label}"| {ids[e.child]}')
    for state, (fill, stroke) in _COLORS.items():
        out.append(f"    classDef {state} fill:{fill},stroke:{stroke},color:#000")
    for n in graph.all_nodes:
        out.append(f"    class {ids[n.key]} {n.state}")
    return "\n".join(out) + "\n"


def _dot_text(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ")


def dot(graph: LineageGraph) -> str:
    """A Graphviz ``digraph`` (render with ``dot -Tsvg``)."""
    ids = _ids(graph)
    out = ["digraph lineage {", '    rankdir="TB";',
           '    node [shape=box, style="rounded,filled", fontname="Helvetica"];',
           '    edge [fontname="Helvetica"];']
    for n in graph.all_nodes:
        fill, stroke = _COLORS[n.state]
        label = "\\n".join(_dot_text(x) for x in _lines(n))
        extra = ", penwidth=2" if n.role == "subject" else ""
        out.append(f'    {ids[n.key]} [label="{label}", fillcolor="{fill}", '
                   f'color="{stroke}"{extra}];')
    for e in graph.edges:
        label = _dot_text(e.label + (" (cycle)" if e.cycle else ""))
        style = ', style="dashed", color="#b21f2d"' if e.cycle else ""
        out.append(f'    {ids[e.parent]} -> {ids[e.child]} [label="{label}"{style}];')
    out.append("}")
    return "\n".join(out) + "\n"
