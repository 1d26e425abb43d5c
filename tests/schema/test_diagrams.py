"""Server-drawn SVG diagrams: well-formed, every state and entity shown, labels escaped."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

from engine.schema import load_definition
from engine.schema.diagrams import relations_svg, workflow_svg

SVG = "{http://www.w3.org/2000/svg}"


def _texts(svg: str) -> list[str]:
    return [t.text or "" for t in ET.fromstring(svg).iter(f"{SVG}text")]


def test_workflow_diagram_shows_every_state_and_transition(sales_doc: dict[str, Any]) -> None:
    app = load_definition(sales_doc)
    texts = _texts(workflow_svg(app.entity("deal")))
    assert {"Lead", "Qualified", "Proposal", "Negotiation", "Won", "Lost"} <= set(texts)
    assert {"Qualify", "Send proposal", "Start negotiation", "Mark won", "Mark lost"} <= set(texts)
    assert texts.count("Mark lost") == 1  # one label per transition, however many states it starts from
    assert workflow_svg(app.entity("customer")) == ""


def test_relations_diagram_shows_entities_and_relations(sales_doc: dict[str, Any]) -> None:
    svg = relations_svg(load_definition(sales_doc))
    root = ET.fromstring(svg)
    assert {"Customer", "Deal", "Order", "Ticket"} <= set(_texts(svg))
    arrows = [p for p in root.iter(f"{SVG}path") if p.get("marker-end")]
    assert len(arrows) == 10  # one arrow per relation field


def test_relations_diagram_puts_targets_above_and_wraps_many_entities() -> None:
    """Each entity sits below the entities it points at; a wide layer wraps at five boxes; no two boxes overlap."""
    defs: dict[str, Any] = {}
    for i in range(13):
        props: dict[str, Any] = {"name": {"title": "Name", "x-crm-field": {"kind": "text"}}}
        if i:
            props["up"] = {"title": f"Up {i}", "x-crm-field": {"kind": "relation", "entity": f"e{(i - 1) // 3}"}}
        defs[f"e{i}"] = {"type": "object", "title": f"Entity {i}", "properties": props}
    defs["e2"]["properties"]["parent"] = {"title": "Parent", "x-crm-field": {"kind": "relation", "entity": "e2"}}
    app = load_definition({"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": "urn:crm:app:big",
                           "title": "Big", "x-crm-app": {"name": "big"}, "$defs": defs})
    root = ET.fromstring(relations_svg(app))
    boxes = [(float(r.get("x") or 0), float(r.get("y") or 0)) for r in root.iter(f"{SVG}rect")]
    assert len(boxes) == 13 and len(set(boxes)) == 13
    rows: dict[float, int] = {}
    for _, y in boxes:
        rows[y] = rows.get(y, 0) + 1
    assert max(rows.values()) <= 5
    y_of = dict(zip([f"Entity {i}" for i in range(13)], [y for _, y in boxes], strict=True))
    assert all(y_of[f"Entity {i}"] > y_of[f"Entity {(i - 1) // 3}"] for i in range(1, 13))
    assert len([p for p in root.iter(f"{SVG}path") if p.get("marker-end")]) == 13  # 12 links and a loop


def test_hostile_labels_are_escaped(sales_doc: dict[str, Any]) -> None:
    sales_doc["$defs"]["deal"]["x-crm-workflow"]["transitions"][0]["title"] = "<script>alert(1)</script>"
    sales_doc["$defs"]["deal"]["title"] = 'Deal" onload="alert(1)'
    app = load_definition(sales_doc)
    for svg in (workflow_svg(app.entity("deal")), relations_svg(app)):
        ET.fromstring(svg)  # still well-formed
        assert "<script" not in svg and 'onload="' not in svg
