"""Diagrams drawn on the server as SVG: an entity's state machine, and an app's entities with their relations.

Plain SVG text with every label escaped (labels are user input), no scripts, no external references, so the
markup can be inlined in a page under our Content-Security-Policy. Layouts are simple and deterministic: states in
columns by their distance from the initial state, entities in a grid."""

from __future__ import annotations

import math
from collections.abc import Callable
from html import escape
from typing import TYPE_CHECKING

from engine.schema.model import App, Entity

if TYPE_CHECKING:
    from engine.workflows.definition import Workflow

__all__ = ["relations_svg", "state_machine_svg", "workflow_svg"]

_BOX_W, _BOX_H = 150, 44
_COL_GAP, _ROW_GAP = 130, 40
_FONT = 'font-family="system-ui, sans-serif" font-size="13"'


def _text(x: float, y: float, label: str, extra: str = "") -> str:
    short = label if len(label) <= 20 else label[:19] + "…"
    return (f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="middle" dominant-baseline="middle" {_FONT}{extra}>'
            f"{escape(short)}</text>")


def _svg(width: float, height: float, title: str, body: list[str]) -> str:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width:.0f} {height:.0f}" width="{width:.0f}"'
            f' height="{height:.0f}" role="img" aria-label="{escape(title)}"><title>{escape(title)}</title>'
            '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7"'
            ' orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#475569"/></marker></defs>'
            + "".join(body) + "</svg>")


def workflow_svg(entity: Entity) -> str:
    """The entity's states (terminal ones with a double border) and transitions (arrows labelled with their titles);
    '' when the entity has no state machine."""
    from engine.workflows.definition import parse_workflow, state_color, state_title

    wf = parse_workflow(entity.workflow)
    if wf is None or not wf.has_states:
        return ""
    return state_machine_svg(wf, entity.title, lambda v: state_title(entity, wf, v),
                             lambda v: state_color(entity, wf, v))


def state_machine_svg(wf: Workflow, title: str, title_of: Callable[[str], str],
                      color_of: Callable[[str], str | None]) -> str:
    """A workflow's diagram with state titles and colours from the caller: the designer draws a draft's workflow
    this way, before the draft loads (a workflow being built has states nothing reaches yet: they stand in a
    column of their own, after the others)."""
    values = [s.value for s in wf.states]
    if wf.initial not in values:
        return ""
    depth = {wf.initial: 0}
    frontier = [wf.initial]
    while frontier:
        nxt = []
        for state in frontier:
            for t in wf.transitions:
                if state in t.from_ and t.to not in depth:
                    depth[t.to] = depth[state] + 1
                    nxt.append(t.to)
        frontier = nxt
    for v in values:
        depth.setdefault(v, max(depth.values(), default=0) + 1)
    terminal = [s.value for s in wf.states if s.terminal]
    if terminal:  # outcomes in a last column of their own, so the flow reads left to right
        last = max(d for v, d in depth.items() if v not in terminal) + 1 if len(terminal) < len(values) else 0
        for v in terminal:
            depth[v] = last
    columns: dict[int, list[str]] = {}
    for v in values:
        columns.setdefault(depth[v], []).append(v)
    pos: dict[str, tuple[float, float]] = {}
    rows = max(len(c) for c in columns.values())
    for col, states in columns.items():
        for row, v in enumerate(states):
            offset = (rows - len(states)) * (_BOX_H + _ROW_GAP) / 2
            pos[v] = (20 + col * (_BOX_W + _COL_GAP), 20 + offset + row * (_BOX_H + _ROW_GAP))
    columns = {c: states for c, states in sorted(columns.items()) if states}
    for col_index, states in enumerate(columns.values()):  # close the gaps terminal states left
        for v in states:
            pos[v] = (20 + col_index * (_BOX_W + _COL_GAP), pos[v][1])
    width = 40 + len(columns) * _BOX_W + (len(columns) - 1) * _COL_GAP
    bottom = 20 + rows * _BOX_H + (rows - 1) * _ROW_GAP
    body: list[str] = []
    back = 0
    for t in wf.transitions:
        labelled = False
        for source in t.from_:
            if source not in pos or t.to not in pos:
                continue
            backwards = pos[t.to][0] < pos[source][0] or (pos[t.to][0] == pos[source][0] and source != t.to)
            skips = pos[t.to][0] - pos[source][0] > _BOX_W + _COL_GAP  # would cross the boxes in between
            if backwards or skips:
                back += 1
                body.append(_back_edge(pos[source], pos[t.to], bottom + 14 * back, "" if labelled else t.label,
                                       dashed=backwards))
            else:
                body.append(_edge(pos[source], pos[t.to], "" if labelled else t.label))
            labelled = True
    height = bottom + 14 * back + 30
    for state in wf.states:
        x, y = pos[state.value]
        color = color_of(state.value) or "#64748b"
        body.append(f'<rect x="{x}" y="{y}" width="{_BOX_W}" height="{_BOX_H}" rx="10" fill="#fff"'
                    f' stroke="{escape(color)}" stroke-width="2"/>')
        if state.terminal:
            body.append(f'<rect x="{x + 4}" y="{y + 4}" width="{_BOX_W - 8}" height="{_BOX_H - 8}" rx="7"'
                        f' fill="none" stroke="{escape(color)}" stroke-width="1"/>')
        weight = ' font-weight="600"' if state.value == wf.initial else ""
        body.append(_text(x + _BOX_W / 2, y + _BOX_H / 2, title_of(state.value), weight))
    return _svg(width, height, f"Workflow of {title}", body)


def _back_edge(a: tuple[float, float], b: tuple[float, float], y: float, label: str, dashed: bool) -> str:
    """A transition back to an earlier state (dashed) or past other columns: routed in a lane below every box, so it
    never crosses one."""
    sx, sy = a[0] + _BOX_W / 2 + (12 if dashed else -12), a[1] + _BOX_H
    ex, ey = b[0] + _BOX_W / 2 + (-12 if dashed else 12), b[1] + _BOX_H
    path = f"M{sx:.1f},{sy:.1f} L{sx:.1f},{y:.1f} L{ex:.1f},{y:.1f} L{ex:.1f},{ey:.1f}"
    text = _text((sx + ex) / 2, y - 6, label, ' fill="#334155"') if label else ""
    dash = ' stroke-dasharray="4 3"' if dashed else ""
    return f'<path d="{path}" fill="none" stroke="#475569"{dash} marker-end="url(#arrow)"/>' + text


def _edge(a: tuple[float, float], b: tuple[float, float], label: str) -> str:
    (ax, ay), (bx, by) = a, b
    if a == b:  # a transition back into the same state: a loop above the box
        x, y = ax + _BOX_W / 2, ay
        text = _text(x, y - 32, label, ' fill="#334155"') if label else ""
        return (f'<path d="M{x - 20},{y} C{x - 30},{y - 35} {x + 30},{y - 35} {x + 20},{y}" fill="none"'
                f' stroke="#475569" marker-end="url(#arrow)"/>' + text)
    forward = bx > ax
    sx = ax + _BOX_W if forward else ax
    ex = bx if forward else bx + _BOX_W
    sy, ey = ay + _BOX_H / 2, by + _BOX_H / 2
    if bx == ax:  # same column: leave from the side
        sx, ex = ax + _BOX_W, bx + _BOX_W
    bend = 0 if forward and bx != ax else 40 + abs(ey - sy) / 4
    mx, my = (sx + ex) / 2, (sy + ey) / 2 - (bend if not forward else 0)
    if bx == ax:
        mx += 50
    path = f"M{sx:.1f},{sy:.1f} Q{mx:.1f},{my - (0 if forward else bend):.1f} {ex:.1f},{ey:.1f}"
    lx, ly = mx, my - (0 if forward else bend / 2) - 8
    dash = "" if forward else ' stroke-dasharray="4 3"'
    text = _text(lx, ly, label, ' fill="#334155"') if label else ""
    return f'<path d="{path}" fill="none" stroke="#475569" marker-end="url(#arrow)"{dash}/>' + text


def relations_svg(app: App) -> str:
    """The app's entities in a grid, with an arrow per relation field (dashed for many-to-many), labelled with the
    field's title."""
    entities = list(app.entities)
    if not entities:
        return ""
    cols = max(1, math.ceil(math.sqrt(len(entities))))
    gap_x, gap_y = 120, 80
    pos: dict[str, tuple[float, float]] = {}
    for i, e in enumerate(entities):
        pos[e.key] = (20 + (i % cols) * (_BOX_W + gap_x), 20 + (i // cols) * (_BOX_H + gap_y))
    rows = math.ceil(len(entities) / cols)
    width = 40 + cols * _BOX_W + (cols - 1) * gap_x
    height = 40 + rows * _BOX_H + (rows - 1) * gap_y
    body: list[str] = []
    for e in entities:
        for f in e.fields:
            if f.kind in ("relation", "relation_many") and f.target in pos:
                body.append(_link(pos[e.key], pos[f.target], f.title, dashed=f.kind == "relation_many"))
    for e in entities:
        x, y = pos[e.key]
        color = e.color or "#2563eb"
        body.append(f'<rect x="{x}" y="{y}" width="{_BOX_W}" height="{_BOX_H}" rx="6" fill="#fff"'
                    f' stroke="{escape(color)}" stroke-width="2"/>')
        body.append(_text(x + _BOX_W / 2, y + _BOX_H / 2, e.title, ' font-weight="600"'))
    return _svg(width, height, f"Entities of {app.title} and their relations", body)


def _link(a: tuple[float, float], b: tuple[float, float], label: str, dashed: bool) -> str:
    (ax, ay), (bx, by) = a, b
    cx_a, cy_a, cx_b, cy_b = ax + _BOX_W / 2, ay + _BOX_H / 2, bx + _BOX_W / 2, by + _BOX_H / 2
    if a == b:
        return (f'<path d="M{ax + _BOX_W - 20},{ay} C{ax + _BOX_W},{ay - 35} {ax + _BOX_W + 30},{ay + 10}'
                f' {ax + _BOX_W},{ay + 20}" fill="none" stroke="#475569" marker-end="url(#arrow)"/>')
    sx, sy = _border(cx_a, cy_a, cx_b, cy_b)
    ex, ey = _border(cx_b, cy_b, cx_a, cy_a)
    style = ' stroke-dasharray="5 4"' if dashed else ""
    return (f'<line x1="{sx:.1f}" y1="{sy:.1f}" x2="{ex:.1f}" y2="{ey:.1f}" stroke="#475569"{style}'
            f' marker-end="url(#arrow)"/>' + _text((sx + ex) / 2, (sy + ey) / 2 - 8, label, ' fill="#334155"'))


def _border(cx: float, cy: float, tx: float, ty: float) -> tuple[float, float]:
    """Where the line from a box's centre towards (tx, ty) leaves the box."""
    dx, dy = tx - cx, ty - cy
    if dx == 0 and dy == 0:
        return cx, cy
    scale = min((_BOX_W / 2) / abs(dx) if dx else math.inf, (_BOX_H / 2) / abs(dy) if dy else math.inf)
    return cx + dx * scale, cy + dy * scale

