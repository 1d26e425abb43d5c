"""Diagrams drawn on the server as SVG: an entity's state machine, and an app's entities with their relations.

Plain SVG text with every label escaped (labels are user input), no scripts, no external references, so the
markup can be inlined in a page under our Content-Security-Policy. Layouts are simple and deterministic: states in
columns by their distance from the initial state, entities in rows below the entities they point at."""

from __future__ import annotations

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
    """The app's entities in rows, each below the entities its relation fields point at, with an arrow per relation
    field (dashed for links to many) labelled with the field's title. A link across several rows runs through gaps
    kept for it in the rows between, so it never crosses a box."""
    entities = list(app.entities)
    if not entities:
        return ""
    keys = [e.key for e in entities]
    links = [(e.key, f.target, f.title, f.kind == "relation_many") for e in entities for f in e.fields
             if f.kind in ("relation", "relation_many") and f.target in keys]
    rows = _rows(keys, [(a, b) for a, b, _, _ in links if a != b])
    row_of = {k: r for r, row in enumerate(rows) for k in row}
    routes: dict[int, list[str]] = {}  # a long link's gaps, one per row it crosses, from its source's side
    for n, (a, b, _, _) in enumerate(links):
        step = 1 if row_of[b] > row_of[a] else -1
        routes[n] = [f"~{n}.{r}" for r in range(row_of[a] + step, row_of[b], step)] if a != b else []
        for gap in routes[n]:
            rows[int(gap.split(".")[1])].append(gap)
    chains = {k: [] for row in rows for k in row}
    for n, (a, b, _, _) in enumerate(links):
        if a != b:
            path = [a, *routes[n], b]
            for i in range(len(path) - 1):
                chains[path[i]].append(path[i + 1])
                chains[path[i + 1]].append(path[i])
    for _ in range(2):
        for r in list(range(1, len(rows))) + list(range(len(rows) - 2, -1, -1)):
            placed = {k: i / len(row) for i2, row in enumerate(rows) if i2 != r for i, k in enumerate(row)}
            rows[r] = _by_barycentre(rows[r], chains, placed)
    width_of = [sum(_item_w(k) for k in row) + (len(row) - 1) * _REL_GAP_X for row in rows]
    width = 40 + max(width_of)
    pos: dict[str, tuple[float, float]] = {}
    for r, row in enumerate(rows):
        x = (width - width_of[r]) / 2
        for k in row:
            pos[k] = (x, 30 + r * (_BOX_H + _REL_GAP_Y))
            x += _item_w(k) + _REL_GAP_X
    height = 60 + len(rows) * _BOX_H + (len(rows) - 1) * _REL_GAP_Y
    firsts = {n: (routes[n][0] if routes[n] else b, routes[n][-1] if routes[n] else a)
              for n, (a, b, _, _) in enumerate(links)}
    ports = _ports(links, pos, firsts)
    body: list[str] = []
    labels: list[str] = []
    for n, (source, target, title, many) in enumerate(links):
        if source == target:
            body.append(_self_link(pos[source], title, many))
            continue
        sx, ex, t = ports[n]
        path, (lx, ly) = _link_path(pos[source], pos[target], (sx, ex), [pos[g] for g in routes[n]], t)
        dash = ' stroke-dasharray="5 4"' if many else ""
        body.append(f'<path d="{path}" fill="none" stroke="#475569"{dash} marker-end="url(#arrow)"/>')
        labels.append(_text(lx, ly, title, _HALO))
    for e in entities:
        x, y = pos[e.key]
        color = e.color or "#2563eb"
        body.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{_BOX_W}" height="{_BOX_H}" rx="6" fill="#fff"'
                    f' stroke="{escape(color)}" stroke-width="2"/>')
        body.append(_text(x + _BOX_W / 2, y + _BOX_H / 2, e.title, ' font-weight="600"'))
    return _svg(width, height, f"Entities of {app.title} and their relations", body + labels)


_REL_GAP_X, _REL_GAP_Y = 40, 90
_GAP_W = 16  # the room a link crossing a row takes in it
_ROW_MAX = 5  # boxes per row before a layer wraps, so an app with many entities stays readable on a screen
_HALO = ' fill="#334155" stroke="#fff" stroke-width="4" paint-order="stroke"'  # labels stay legible over lines


def _item_w(key: str) -> float:
    return _GAP_W if key.startswith("~") else _BOX_W


def _rows(keys: list[str], edges: list[tuple[str, str]]) -> list[list[str]]:
    """Entities in layers: one pointed at by others above them (longest path to an entity that points at nothing;
    cycles are cut where the search meets them), wrapped at _ROW_MAX boxes."""
    out: dict[str, list[str]] = {k: [] for k in keys}
    for a, b in edges:
        out[a].append(b)
    layer: dict[str, int] = {}
    visiting: set[str] = set()

    def depth(key: str) -> int:
        if key in layer:
            return layer[key]
        visiting.add(key)
        layer[key] = 1 + max((depth(t) for t in out[key] if t not in visiting), default=-1)
        visiting.discard(key)
        return layer[key]

    for k in keys:
        depth(k)
    layers = [[k for k in keys if layer[k] == n] for n in range(max(layer.values()) + 1)]
    return [row[i:i + _ROW_MAX] for row in layers if row for i in range(0, len(row), _ROW_MAX)]


def _by_barycentre(row: list[str], neighbours: dict[str, list[str]], placed: dict[str, float]) -> list[str]:
    """The row ordered so each item sits where the items it links to are, on average (ties keep their order)."""
    def centre(item: tuple[int, str]) -> tuple[float, int]:
        index, key = item
        known = [placed[k] for k in neighbours[key] if k in placed]
        return (sum(known) / len(known) if known else index / max(len(row), 1), index)

    return [k for _, k in sorted(enumerate(row), key=centre)]


def _sides(a: tuple[float, float], b: tuple[float, float]) -> tuple[str, str]:
    """Which side of the source box a link leaves and which side of the target it enters."""
    if b[1] < a[1]:
        return "top", "bottom"
    if b[1] > a[1]:
        return "bottom", "top"
    return "top", "top"  # same row: an arc above


def _ports(links: list[tuple[str, str, str, bool]], pos: dict[str, tuple[float, float]],
           nearest: dict[int, tuple[str, str]]) -> dict[int, tuple[float, float, float]]:
    """The x where each link leaves its source and enters its target: the ends on one side of a box spread evenly
    along it, in the order of what is at their other ends (the target, or the first gap on the way), so lines fan
    out instead of meeting in one point. Third: where along the way its label goes, staggered among the links
    leaving one side of a box so their labels do not overlap."""
    ends: dict[tuple[str, str], list[tuple[float, int, int]]] = {}
    for n, (source, target, _, _) in enumerate(links):
        if source == target:
            continue
        leave, enter = _sides(pos[source], pos[target])
        ahead, behind = nearest[n]
        ends.setdefault((source, leave), []).append((pos[ahead][0], n, 0))
        ends.setdefault((target, enter), []).append((pos[behind][0], n, 1))
    found: dict[int, list[float]] = {}
    for (key, _side), items in ends.items():
        items.sort()
        for i, (_, n, which) in enumerate(items):
            x = pos[key][0] + 16 + (_BOX_W - 32) * (i + 1) / (len(items) + 1)
            found.setdefault(n, [0.0, 0.0, 0.35])[which] = x
            if which == 0 and len(items) > 1:
                found[n][2] = 0.2 + 0.5 * i / (len(items) - 1)
    return {n: (xs[0], xs[1], xs[2]) for n, xs in found.items()}


def _curve(sx: float, sy: float, ex: float, ey: float, t: float) -> tuple[str, tuple[float, float]]:
    """A vertical S-curve from one point to another, and the point at `t` (0 to 1) along it."""
    bend = max(abs(ey - sy) / 2, 30)
    c1y, c2y = (sy - bend, ey + bend) if ey < sy else (sy + bend, ey - bend)
    lx = (1 - t) ** 3 * sx + 3 * (1 - t) ** 2 * t * sx + 3 * (1 - t) * t**2 * ex + t**3 * ex
    ly = (1 - t) ** 3 * sy + 3 * (1 - t) ** 2 * t * c1y + 3 * (1 - t) * t**2 * c2y + t**3 * ey
    return f" C{sx:.1f},{c1y:.1f} {ex:.1f},{c2y:.1f} {ex:.1f},{ey:.1f}", (lx, ly)


def _link_path(a: tuple[float, float], b: tuple[float, float], xs: tuple[float, float],
               gaps: list[tuple[float, float]], t: float) -> tuple[str, tuple[float, float]]:
    """The path from the source box through the gaps of the rows between to the target box, and where its label
    goes (`t` of the way to the next row, so it stays near the entity that has the field)."""
    leave, enter = _sides(a, b)
    sx, ex = xs
    sy = a[1] if leave == "top" else a[1] + _BOX_H
    ey = b[1] if enter == "top" else b[1] + _BOX_H
    if leave == enter:  # same row: an arc above both boxes
        lift = 30 + abs(ex - sx) / 6
        mid = ((sx + ex) / 2, sy - lift * 0.75)
        return f"M{sx:.1f},{sy:.1f} C{sx:.1f},{sy - lift:.1f} {ex:.1f},{ey - lift:.1f} {ex:.1f},{ey:.1f}", mid
    up = leave == "top"
    path, x, y = f"M{sx:.1f},{sy:.1f}", sx, sy
    label: tuple[float, float] | None = None
    for gx, gy in gaps:  # enter the gap at one edge of its row, leave at the other
        cx = gx + _GAP_W / 2
        near, far = (gy + _BOX_H, gy) if up else (gy, gy + _BOX_H)
        segment, at = _curve(x, y, cx, near, t)
        path += segment + f" L{cx:.1f},{far:.1f}"
        label = label or at
        x, y = cx, far
    segment, at = _curve(x, y, ex, ey, t)
    return path + segment, label or at


def _self_link(a: tuple[float, float], label: str, many: bool) -> str:
    """A relation to the same entity (a parent, a manager): a loop on the box's right side."""
    x, y = a[0] + _BOX_W, a[1]
    dash = ' stroke-dasharray="5 4"' if many else ""
    return (f'<path d="M{x:.1f},{y + 12:.1f} C{x + 40:.1f},{y - 10:.1f} {x + 40:.1f},{y + _BOX_H + 10:.1f}'
            f' {x:.1f},{y + _BOX_H - 12:.1f}" fill="none" stroke="#475569"{dash} marker-end="url(#arrow)"/>'
            + _text(x + 34, y - 8, label, _HALO))
