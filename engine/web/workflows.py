"""Workflow pages: firing a transition from a record page, and the board (kanban) of an entity with states, where
dropping a card on another column fires the transition that leads there.

The records service decides (TransitionRefused says why it will not); these handlers only show its answer. htmx
requests get the fragment they swap (the record page's content, the board's columns) with the refusal in an alert;
plain posts get 303 on success and the whole page with the message (409) on refusal."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import parse_qsl

from litestar import Router, get, post
from litestar.params import FromPath, RawBody
from litestar.plugins.htmx import HTMXRequest
from litestar.response import Redirect, Response, Template

from engine.errors import NotFoundError, PermissionDenied
from engine.forms.listquery import ListView, read_list_view
from engine.schema import Field
from engine.storage.query import Filter
from engine.web.access import EXCEPTION_HANDLERS, allowed, scope
from engine.web.context import Scope
from engine.web.formatting import display
from engine.web.lists import filter_chips, record_title, related_titles
from engine.web.posts import form_data, last
from engine.web.record_page import record_context
from engine.workflows.runtime import Flow, TransitionRefused

__all__ = ["HANDLERS", "Column", "board_context"]

PathText = FromPath[str]
_PATH = "/apps/{app_name:str}/{entity_key:str}"
_RECORD = _PATH + "/{record_id:str}"
#: A column shows at most this many cards; a link lists the rest.
CARDS_PER_COLUMN = 50


def _flow(sc: Scope) -> Flow:
    """The entity's state machine; NotFoundError when it has none or the user may not see its state field."""
    flow: Flow | None = sc.records.flow(sc.entity.key)
    if flow is None or not flow.has_states or sc.entity.field(flow.state_field or "").hidden:
        raise NotFoundError(f"{sc.entity.title} has no workflow states")
    return flow


# --- the record page's transition buttons ---------------------------------------------------------------------
@post(_RECORD + "/transition/{name:str}", name="record-transition", status_code=200, sync_to_thread=True)
def fire_transition(request: HTMXRequest, app_name: PathText, entity_key: PathText, record_id: PathText,
                    name: PathText, body: RawBody) -> Response[Any]:
    """Fire a transition on the record (`seen_state`: the state the page showed). Done: the record page as it is
    now, with a notice (303 to it for plain posts). Refused: the record page unchanged, with the reason."""
    sc = scope(request, app_name, entity_key)
    seen = last(form_data(body), "seen_state") or None
    refused = notice = None
    try:
        record = sc.records.transition(sc.entity.key, record_id, name, seen_state=seen)
    except TransitionRefused as exc:
        refused = str(exc)
        record = sc.records.get(sc.entity.key, record_id)
    else:
        if not request.htmx:
            return Redirect(f"{sc.base}/{record_id}", status_code=303)
        notice = _done(sc, name, seen, record)
    context = {**record_context(sc, record), "refused": refused, "notice": notice}
    if request.htmx:
        return Template(template_name="partials/record_body.html", context=context)
    return Template(template_name="record.html", context=context, status_code=409)


def _done(sc: Scope, name: str, seen: str | None, after: dict[str, Any]) -> str:
    """What a fired transition did, in words: "Qualify: Lead → Qualified." """
    flow = _flow(sc)
    t = flow.workflow.transition(name)
    to = flow.state_title(flow.state_of(after))
    return f"{t.label if t else name}: {flow.state_title(seen)} → {to}." if seen else f"{t.label if t else name}: {to}."


# --- the board ---------------------------------------------------------------------------------------------------
@dataclass
class Column:
    """One state's column on the board."""

    value: str
    title: str
    color: str | None
    terminal: bool
    count: int
    total: str | None  # the column's sum as the list shows the summed field; None without a sum field
    cards: list[dict[str, Any]]
    list_url: str  # the list view of this state's records (with the board's search and filters)

    @property
    def more(self) -> int:
        """How many of the column's records are not shown as cards."""
        return max(self.count - len(self.cards), 0)


def _card_fields(sc: Scope, flow: Flow) -> list[Field]:
    board = flow.workflow.board
    fields = sc.entity.field_map()
    keys = board.card_fields if board else ()
    return [fields[k] for k in keys if k in fields and not fields[k].hidden and not fields[k].sensitive
            and k not in (flow.state_field, sc.entity.title_field)]


def _sum_field(sc: Scope, flow: Flow) -> Field | None:
    board = flow.workflow.board
    f = sc.entity.field_map().get(board.sum or "") if board else None
    return f if f is not None and not f.hidden else None


def board_context(sc: Scope, view: ListView, flow: Flow, refused: str | None = None,
                  moved: str | None = None) -> dict[str, Any]:
    """Everything board.html shows: a column per state with its count, sum and first cards, for the records the
    list view's search and filters select."""
    key = flow.state_field or ""
    sum_field = _sum_field(sc, flow)
    query = view.query(limit=CARDS_PER_COLUMN, first_page=True)
    totals = sc.records.totals(sc.entity.key, key, sum_field.key if sum_field else None, query)
    columns = []
    for value, title, color, terminal in flow.states():
        count, total = totals.get(value, (0, None))
        in_state = replace(query, filters=[*query.filters, Filter(key, "eq", value)])
        cards = sc.records.query(sc.entity.key, in_state).records if count else []
        filters = (*view.state.filters, Filter(key, "eq", value))
        columns.append(Column(value, title, color, terminal, count,
                              display(total or 0, sum_field) if sum_field else None, cards,
                              f"{sc.base}?{view.query_string(filters=filters)}"))
    card_fields = _card_fields(sc, flow)
    records = [r for c in columns for r in c.cards]
    query_string = view.query_string()
    return {
        "title": f"{sc.entity.plural or sc.entity.title} board", "app": sc.app, "entity": sc.entity, "base": sc.base,
        "view": view, "columns": columns, "card_fields": card_fields, "sum_field": sum_field,
        "titles": related_titles(sc, card_fields, records),
        "card_titles": {r["id"]: record_title(sc.entity, r) for r in records},
        "chips": filter_chips(sc, view), "query_string": query_string,
        "list_url": f"{sc.base}?{query_string}" if query_string else sc.base,
        "refused": refused, "moved": moved, "can": allowed(sc),
    }


def _view(request: HTMXRequest, sc: Scope) -> ListView:
    return read_list_view(sc.entity, parse_qsl(request.url.query, keep_blank_values=True))


@get(_PATH + "/board", name="board", sync_to_thread=True)
def board_page(request: HTMXRequest, app_name: PathText, entity_key: PathText) -> Template:
    """The board: one column per state, cards people drag from one column to another."""
    sc = scope(request, app_name, entity_key)
    return Template(template_name="board.html", context=board_context(sc, _view(request, sc), _flow(sc)))


def _transition_to(sc: Scope, flow: Flow, state: str | None, to: str) -> str:
    """The transition a card dropped on column `to` fires: the first from `state` to `to` the user's roles allow
    (else the first there is, which the records service refuses with the roles it needs)."""
    if to not in {value for value, *_ in flow.states()}:
        raise TransitionRefused(f"{sc.entity.title} has no state '{to}'.")
    leading = [t for t in flow.workflow.leaving(state) if t.to == to]
    if not leading:
        onward = [flow.state_title(t.to) for t in flow.workflow.leaving(state)]
        where = f" From {flow.state_title(state)} it can go to {', '.join(dict.fromkeys(onward))}." if onward else ""
        raise TransitionRefused(f"This {sc.entity.title.lower()} cannot move from {flow.state_title(state)} to"
                                f" {flow.state_title(to)}.{where}")
    principal = sc.records.principal
    return next((t for t in leading if flow.role_allows(principal, t)), leading[0]).name


@post(_RECORD + "/move", name="board-move", status_code=200, sync_to_thread=True)
def move_card(request: HTMXRequest, app_name: PathText, entity_key: PathText, record_id: PathText,
              body: RawBody) -> Response[Any]:
    """A card dropped on another column (`to`; `seen_state`: the column it came from): fire the transition that
    leads there. Answers the board's columns as they are now, with the reason when the move was refused (the card
    is back in its column). Plain posts: 303 to the board when done, the board with the reason (409) when not."""
    sc = scope(request, app_name, entity_key)
    flow = _flow(sc)
    form = form_data(body)
    to, seen = last(form, "to"), last(form, "seen_state") or None
    record = sc.records.get(sc.entity.key, record_id)
    start = seen or flow.state_of(record)
    refused = moved = None
    try:
        if to != start:  # dropped back on its own column: nothing to do
            name = _transition_to(sc, flow, start, to)
            record = sc.records.transition(sc.entity.key, record_id, name, seen_state=seen)
            moved = f"{record_title(sc.entity, record) or sc.entity.title} → {flow.state_title(to)}."
    except TransitionRefused as exc:
        refused = str(exc)
    except PermissionDenied as exc:
        if not request.htmx:
            raise
        refused = str(exc).capitalize()
    view = _view(request, sc)
    if not request.htmx:
        if refused is None:
            return Redirect(f"{sc.base}/board?{view.query_string()}".rstrip("?"), status_code=303)
        return Template(template_name="board.html", context=board_context(sc, view, flow, refused), status_code=409)
    return Template(template_name="partials/board_columns.html", context=board_context(sc, view, flow, refused, moved))


HANDLERS = [Router(path="/", exception_handlers=EXCEPTION_HANDLERS, route_handlers=[
    fire_transition, board_page, move_card])]
