"""The migration plan: what applying a new definition will do to stored data, computed before anything changes.

Entities and fields are matched old -> new by key, by an explicit rename (`renamedFrom`, in either direction so a
rollback undoes a rename) or from the archive (a removed field or entity that comes back gets its values back).
Every change that touches stored values is checked against the rows: when some cannot be kept the plan is refused
and names the first offending records and how many there are."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

import msgspec
import sqlalchemy as sa

from engine.schema import App, Entity, Field
from engine.schema.canonical import to_entity_schema, to_field_schema
from engine.schema.kinds import ConversionError, kind_of
from engine.schema.loader import _load_entity
from engine.schema.validation import EntityValidator, field_errors
from engine.storage.database import crm_archive
from engine.storage.tables import entity_table_name, link_table_name, storage_type

__all__ = ["Blocker", "MigrationPlan", "Step", "compute_plan"]

_SAMPLE = 5


@dataclass
class Step:
    """One change to storage."""

    action: str
    entity: str
    field: str | None = None
    old: str | None = None  # the previous key (renames) or stored name (restores)
    archive_id: int | None = None
    note: str = ""

    def describe(self) -> str:
        """The step in plain words."""
        what = f"{self.entity}.{self.field}" if self.field else self.entity
        text = {
            "add_entity": f"create entity {what}",
            "rename_entity": f"rename entity {self.old} -> {self.entity} (records kept)",
            "restore_entity": f"restore entity {what} from the archive (records kept)",
            "archive_entity": f"archive entity {what} (records kept, restorable)",
            "purge_entity": f"DESTROY entity {what} and all its records",
            "add_field": f"add field {what}",
            "rename_field": f"rename field {self.entity}.{self.old} -> {self.field} (values kept)",
            "restore_field": f"restore field {what} from the archive (values kept)",
            "convert_field": f"convert field {what}",
            "check_field": f"change rules of field {what}",
            "fill_default": f"fill empty {what} with its default",
            "archive_field": f"archive field {what} (values kept, restorable)",
            "purge_field": f"DESTROY field {what} and its values",
            "update_field": f"update label/settings of field {what}",
            "update_entity": f"update settings of entity {what}",
        }[self.action]
        return f"{text}: {self.note}" if self.note else text


@dataclass
class Blocker:
    """A change that would lose or corrupt stored values; the plan cannot be applied while it stands."""

    entity: str
    field: str | None
    message: str
    count: int = 0
    records: list[str] = field(default_factory=list)  # "id (title): detail" for the first offenders
    record_ids: list[str] = field(default_factory=list)  # their ids, in the same order (for links to them)

    def describe(self) -> list[str]:
        """The blocker as printable lines."""
        where = f"{self.entity}.{self.field}" if self.field else self.entity
        head = f"REFUSED {where}: {self.message}"
        if self.count:
            head += f" ({self.count} record{'s' if self.count != 1 else ''})"
        more = self.count - len(self.records)
        return [head, *(f"    {r}" for r in self.records), *([f"    ... and {more} more"] if more > 0 else [])]


@dataclass
class MigrationPlan:
    """What applying `new` over the current version does; `blockers` empty means it can be applied."""

    app: str
    from_version: int | None
    new: App
    steps: list[Step] = field(default_factory=list)
    blockers: list[Blocker] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Whether the plan can be applied."""
        return not self.blockers

    @property
    def changes_anything(self) -> bool:
        """Whether applying would change anything."""
        return bool(self.steps)

    def lines(self) -> list[str]:
        """The plan as printable lines."""
        head = (f"app {self.app}: new app" if self.from_version is None
                else f"app {self.app}: version {self.from_version} -> {self.from_version + 1}")
        if not self.steps and not self.blockers:
            return [head, "  no changes"]
        out = [head, *(f"  {s.describe()}" for s in self.steps)]
        for b in self.blockers:
            out.extend(f"  {line}" for line in b.describe())
        return out

    def to_json(self) -> str:
        """The steps as JSON (kept with the version)."""
        return json.dumps([asdict(s) for s in self.steps], ensure_ascii=False)


def _storage_signature(f: Field) -> tuple[Any, ...]:
    return (f.kind, f.precision, f.scale, f.target, f.sensitive)


def _rules_signature(f: Field) -> str:
    schema = to_field_schema(f)
    for k in ("title", "description", "x-crm-ui", "x-crm-i18n", "default", "readOnly"):
        schema.pop(k, None)
    x = dict(schema.pop("x-crm-field"))
    for k in ("hidden", "searchable", "indexed", "renamedFrom", "visibleIf", "unique", "onDelete"):
        x.pop(k, None)
    schema["x"] = x
    for holder in (schema, schema.get("items")):  # an option's title and colour are labels: only its value rules
        if isinstance(holder, dict) and isinstance(holder.get("anyOf"), list):
            holder["anyOf"] = [o.get("const") if isinstance(o, dict) else o for o in holder["anyOf"]]
    return json.dumps(schema, sort_keys=True, default=str)


def _match(new_items: list[Any], old_items: dict[str, Any], archived: dict[str, Any],
           aliases: dict[str, set[str]] | None = None) -> tuple[dict[str, tuple[str, Any]], list[str]]:
    """Pair each new item with its old one: {new_key: (how, old)}; how is same/rename/restore/add.
    `aliases` gives each old item's earlier keys, so going back to any earlier name is a rename home."""
    aliases = aliases or {}
    new_keys = {n.key for n in new_items}
    taken: set[str] = set()
    pairs: dict[str, tuple[str, Any]] = {}
    for n in new_items:
        if n.key in old_items and n.key not in taken:
            pairs[n.key] = ("same", old_items[n.key])
            taken.add(n.key)
    for n in new_items:
        if n.key in pairs:
            continue
        src = n.renamed_from
        if src and src in old_items and src not in new_keys and src not in taken:
            pairs[n.key] = ("rename", old_items[src])
            taken.add(src)
            continue
        back = [o for o in old_items.values() if (o.renamed_from == n.key or n.key in aliases.get(o.key, ()))
                and o.key not in new_keys and o.key not in taken]
        if back:  # the old version renamed this item away; going back renames it home
            pairs[n.key] = ("rename", back[0])
            taken.add(back[0].key)
        elif n.key in archived:
            pairs[n.key] = ("restore", archived[n.key])
        else:
            pairs[n.key] = ("add", None)
    gone = [k for k in old_items if k not in taken]
    return pairs, gone


class _Planner:
    def __init__(self, conn: sa.Connection, app_name: str, old: App | None, new: App, purge: bool) -> None:
        self.conn, self.app_name, self.old, self.new, self.purge = conn, app_name, old, new, purge
        self.plan = MigrationPlan(app=app_name, from_version=old.version if old else None, new=new)
        rows = conn.execute(sa.select(crm_archive).where(crm_archive.c.app == app_name,
                                                         crm_archive.c.state == "archived")
                            .order_by(crm_archive.c.id)).mappings().all()
        # A new app finds archives only when an app of the same name was deleted: its entities come back.
        self.archived_entities = {r["entity"]: r for r in rows if r["field"] is None}
        self.entity_aliases, self.field_aliases = lineage(conn, app_name)
        self.archived_fields: dict[str, dict[str, Any]] = {}
        for r in rows:
            if r["field"] is not None:
                self.archived_fields.setdefault(r["entity"], {})[r["field"]] = r

    # --- entities -------------------------------------------------------------------------------------
    def run(self) -> MigrationPlan:
        old_entities = self.old.entity_map() if self.old else {}
        archived = {k: _ArchivedEntity(r) for k, r in self.archived_entities.items()}
        pairs, gone = _match(list(self.new.entities), old_entities, archived, self.entity_aliases)
        self.entity_renames = {prior.key: key for key, (how, prior) in pairs.items() if how == "rename"}
        for e in self.new.entities:
            how, prior = pairs[e.key]
            if how == "add":
                self.plan.steps.append(Step("add_entity", e.key))
                continue
            if how == "rename":
                self.plan.steps.append(Step("rename_entity", e.key, old=prior.key))
            elif how == "restore":
                self.plan.steps.append(Step("restore_entity", e.key, old=prior.row["stored_as"],
                                            archive_id=prior.row["id"]))
                prior = prior.entity
            self._fields(prior, e, table=self._table_of(how, prior, e), restored=how == "restore")
        for key in gone:
            action = "purge_entity" if self.purge else "archive_entity"
            self.plan.steps.append(Step(action, key))
        return self.plan

    def _table_of(self, how: str, prior: Entity, new: Entity) -> str:
        if how == "restore":
            return self.archived_entities[new.key]["stored_as"]
        return entity_table_name(self.app_name, prior.key)

    # --- fields ---------------------------------------------------------------------------------------
    def _fields(self, old_e: Entity, new_e: Entity, table: str, restored: bool) -> None:
        archived = {k: _ArchivedField(r) for k, r in self.archived_fields.get(old_e.key, {}).items()}
        for key, item in list(archived.items()):  # renamed, then removed: it comes back under an earlier key too
            for alias in sorted(self.field_aliases.get((old_e.key, key), ())):
                archived.setdefault(alias, item)
        aliases = {f.key: self.field_aliases.get((old_e.key, f.key), set()) for f in old_e.fields}
        pairs, gone = _match(list(new_e.fields), old_e.field_map(), archived, aliases)
        rows = self._row_count(table)
        for f in new_e.fields:
            how, prior = pairs[f.key]
            if how == "add":
                self.plan.steps.append(Step("add_field", new_e.key, f.key))
                if f.required and rows and f.default is None:
                    self._block(new_e, f, f"is new and required, but {rows} existing record(s) would have no value;"
                                          " give it a default or make it optional", rows, [])
                elif f.required and rows:
                    self.plan.steps.append(Step("fill_default", new_e.key, f.key))
                continue
            if how == "rename":
                self.plan.steps.append(Step("rename_field", new_e.key, f.key, old=prior.key))
            elif how == "restore":
                self.plan.steps.append(Step("restore_field", new_e.key, f.key, old=prior.row["stored_as"],
                                            archive_id=prior.row["id"]))
                prior = prior.field
            column = archived[f.key].row["stored_as"] if how == "restore" else prior.key
            self._compare(new_e, prior, f, table, column, rows, old_e.key)
        for key in gone:
            self.plan.steps.append(Step("purge_field" if self.purge else "archive_field", new_e.key, key))
        if old_e.rules != new_e.rules and rows and not self.plan.blockers:
            self._check_rules(old_e, new_e, table)
        if to_entity_schema(old_e) != to_entity_schema(new_e) and not restored:
            if not any(s.entity == new_e.key for s in self.plan.steps):
                self.plan.steps.append(Step("update_entity", new_e.key))

    def _compare(self, entity: Entity, old: Field, new: Field, table: str, column: str, rows: int,
                 old_entity: str) -> None:
        if old.target in self.entity_renames:  # a link to a renamed entity: the same rows, under their new name
            old = msgspec.structs.replace(old, target=self.entity_renames[old.target])
        convert = _storage_signature(old) != _storage_signature(new)
        check = convert or _rules_signature(old) != _rules_signature(new)
        if convert:
            note = (f"{old.kind} -> {new.kind}" if old.kind != new.kind
                    else ("encrypt values" if new.sensitive else "decrypt values") if old.sensitive != new.sensitive
                    else "new storage settings")
            self.plan.steps.append(Step("convert_field", entity.key, new.key, note=note))
        elif check:
            self.plan.steps.append(Step("check_field", entity.key, new.key))
        elif to_field_schema(old) != to_field_schema(new) and old.key == new.key:
            self.plan.steps.append(Step("update_field", entity.key, new.key))
        if rows and check and new.kind != "relation_many":
            self._check_values(entity, old, new, table, column, convert)
        elif rows and convert and (old.kind == "relation_many") != (new.kind == "relation_many"):
            self._block(entity, new, "a many-to-many relation cannot change kind; add a new field instead", 0, [])
        elif convert and old.kind == new.kind == "relation_many":  # its link table refers to the old target
            self._check_links(entity, new, table, link_table_name(self.app_name, old_entity, column), rows)
        if rows and new.required and not old.required:
            empty = self._empty(table, column, entity)
            if empty[0] and new.default is None:
                self._block(entity, new, "is now required but some records have no value;"
                                         " give it a default or fill them in first", *empty)
            elif empty[0]:
                self.plan.steps.append(Step("fill_default", entity.key, new.key))
        if rows and new.unique and not old.unique:
            self._check_unique(entity, new, table, column)

    # --- data checks ----------------------------------------------------------------------------------
    def _row_count(self, table: str) -> int:
        return self.conn.execute(sa.select(sa.func.count()).select_from(sa.table(table))).scalar() or 0

    def _title_col(self, entity: Entity, table: str) -> Any:
        tf = entity.title_field
        if tf and tf in {f.key for f in (self.old.entity(entity.key).fields if self._old_has(entity) else ())}:
            return sa.column(tf)
        return sa.null()

    def _old_has(self, entity: Entity) -> bool:
        return self.old is not None and entity.key in self.old.entity_map()

    def _check_values(self, entity: Entity, old: Field, new: Field, table: str, column: str, convert: bool) -> None:
        old_kind, new_kind = kind_of(old.kind), kind_of(new.kind)
        col = sa.column(column, storage_type(old))
        stmt = (sa.select(sa.column("id"), col, self._title_col(entity, table).label("t"))
                .select_from(sa.table(table)).where(col.is_not(None)).order_by(sa.column("id")))
        count = 0
        sample: list[Offender] = []
        for rid, raw, title in self.conn.execute(stmt):
            value = old_kind.from_db(old, raw)
            try:
                value = new_kind.convert(old, new, value) if convert else value
                errors = field_errors(new, value) if value is not None else []
            except ConversionError as exc:
                errors = [str(exc)]
            if errors:
                count += 1
                if len(sample) < _SAMPLE:
                    sample.append(_offender(rid, title, f"{json.dumps(value, ensure_ascii=False, default=str)}:"
                                                        f" {errors[0]}"))
        if count:
            change = (f"cannot become {new.kind}" if old.kind != new.kind
                      else "cannot move to the new target (add a new relation field instead)"
                      if old.target != new.target else "do not fit the new rules")
            self._block(entity, new, f"stored values {change}; change those records first", count, sample)

    def _empty(self, table: str, column: str, entity: Entity) -> tuple[int, list[Offender]]:
        stmt = (sa.select(sa.column("id"), self._title_col(entity, table)).select_from(sa.table(table))
                .where(sa.column(column).is_(None)).order_by(sa.column("id")))
        rows = self.conn.execute(stmt).all()
        return len(rows), [_offender(r[0], r[1], "empty") for r in rows[:_SAMPLE]]

    def _check_unique(self, entity: Entity, new: Field, table: str, column: str) -> None:
        col = sa.column(column)
        dupes = self.conn.execute(sa.select(col, sa.func.count().label("n")).select_from(sa.table(table))
                                  .where(col.is_not(None)).group_by(col).having(sa.func.count() > 1)).all()
        if dupes:
            total = sum(n for _, n in dupes)
            uses = dict(dupes)
            shared = list(uses)[:_SAMPLE]
            rows = self.conn.execute(sa.select(sa.column("id"), self._title_col(entity, table), col)
                                     .select_from(sa.table(table)).where(col.in_(shared))
                                     .order_by(col, sa.column("id")).limit(_SAMPLE)).all()
            sample = [_offender(rid, title, f"{value!s} is used by {uses[value]} records")
                      for rid, title, value in rows]
            self._block(entity, new, "is now unique but some values are used more than once", total, sample)

    def _check_links(self, entity: Entity, new: Field, table: str, links: str, rows: int) -> None:
        """A many-to-many relation given another target: refused (its link table refers to the old target's
        records), naming the records that have links."""
        message = "a many-to-many relation cannot change its target; add a new relation field instead"
        found: list[Any] = []
        if rows and sa.inspect(self.conn).has_table(links):
            linked = sa.select(sa.table(links, sa.column("source_id")).c.source_id)
            found = list(self.conn.execute(sa.select(sa.column("id"), self._title_col(entity, table))
                                           .select_from(sa.table(table)).where(sa.column("id").in_(linked))
                                           .order_by(sa.column("id"))).all())
        self._block(entity, new, message, len(found), [_offender(r[0], r[1], "has links") for r in found[:_SAMPLE]])

    def _check_rules(self, old_e: Entity, new_e: Entity, table: str) -> None:
        from engine.storage.records import row_to_record

        validator = EntityValidator(new_e)
        t = sa.table(table, *(sa.column(f.key, storage_type(f)) for f in old_e.fields
                              if f.kind != "relation_many" and f.key in new_e.field_map()), sa.column("id"))
        count = 0
        sample: list[Offender] = []
        fields = [f for f in new_e.fields if f.kind != "relation_many" and f.key in old_e.field_map()]
        for row in self.conn.execute(sa.select(t).order_by(sa.column("id"))).mappings():
            record = row_to_record(fields, row)
            errors = validator.errors({k: v for k, v in record.items() if k in new_e.field_map()})
            if errors:
                count += 1
                if len(sample) < _SAMPLE:
                    sample.append(_offender(row["id"], None, str(errors[0])))
        if count:
            self._block(new_e, None, "the new conditional rules do not hold for some records", count, sample)

    def _block(self, entity: Entity, f: Field | None, message: str, count: int, sample: list[Offender]) -> None:
        self.plan.blockers.append(Blocker(entity.key, f.key if f else None, message, count,
                                          [text for _, text in sample], [str(rid) for rid, _ in sample]))


#: A record that blocks a change: its id, and "id (title): detail".
Offender = tuple[str, str]


def _offender(rid: str, title: Any, detail: str) -> Offender:
    return rid, f"{rid}{f' ({title})' if title else ''}: {detail}"


class _ArchivedEntity:
    def __init__(self, row: Any) -> None:
        self.row = row
        self.key = row["entity"]
        self.renamed_from = None
        self.entity = _entity_from_json(row["entity"], row["definition"])


class _ArchivedField:
    def __init__(self, row: Any) -> None:
        self.row = row
        self.key = row["field"]
        self.renamed_from = None
        probe = {"type": "object", "title": "x", "properties": {row["field"]: json.loads(row["definition"])}}
        self.field = _entity_from_json("x", json.dumps(probe)).fields[0]


def _entity_from_json(key: str, text: str) -> Entity:
    problems: list[Any] = []
    entity = _load_entity(key, key, json.loads(text), problems)
    if entity is None:  # archived with a definition this engine no longer reads: keep it archived
        raise ValueError(f"cannot read the archived definition of {key}: {problems}")
    return entity


def lineage(conn: sa.Connection, app_name: str) -> tuple[dict[str, set[str]], dict[tuple[str, str], set[str]]]:
    """Every earlier key of each entity and field, live or archived, from the steps every version applied: renames,
    restores (possibly under an earlier key) and purges, so going back to any earlier name finds the same data."""
    from engine.storage.database import crm_app_versions

    archived_keys = dict(conn.execute(sa.select(crm_archive.c.id, crm_archive.c.field)
                                      .where(crm_archive.c.app == app_name)).all())
    plans = conn.execute(sa.select(crm_app_versions.c.plan).where(crm_app_versions.c.app == app_name)
                         .order_by(crm_app_versions.c.version)).scalars()
    ents: dict[str, set[str]] = {}
    flds: dict[tuple[str, str], set[str]] = {}
    for text in plans:
        for s in json.loads(text):
            entity, key, action = s["entity"], s.get("field"), s["action"]
            if action == "rename_entity":
                ents[entity] = (ents.pop(s["old"], set()) | {s["old"]}) - {entity}
                for e, f in [k for k in flds if k[0] == s["old"]]:
                    flds[(entity, f)] = flds.pop((e, f))
            elif action in ("add_entity", "purge_entity"):
                ents.pop(entity, None)
                for k in [k for k in flds if k[0] == entity]:
                    del flds[k]
            elif action == "rename_field":
                flds[(entity, key)] = (flds.pop((entity, s["old"]), set()) | {s["old"]}) - {key}
            elif action == "restore_field":
                was = archived_keys.get(s["archive_id"]) or key
                flds[(entity, key)] = (flds.pop((entity, was), set()) | {was}) - {key}
            elif action in ("add_field", "purge_field"):
                flds.pop((entity, key), None)
    for k in [k for k in flds if not flds[k]]:
        del flds[k]
    return {k: v for k, v in ents.items() if v}, flds


def compute_plan(conn: sa.Connection, app_name: str, old: App | None, new: App, purge: bool = False) -> MigrationPlan:
    """The plan for applying `new` over `old` (None for a new app), with data checks run on `conn`."""
    planner = _Planner(conn, app_name, old, new, purge)
    from engine.storage.crypto import KEY_ENV, has_key

    if not has_key():  # refuse before any data check tries to read encrypted values
        touched = [(e, f) for app in (old, new) if app for e in app.entities for f in e.fields if f.sensitive]
        for e, f in touched:
            if not any(b.entity == e.key and b.field == f.key for b in planner.plan.blockers):
                message = f"is sensitive (encrypted at rest): set the {KEY_ENV} environment variable to apply this"
                planner.plan.blockers.append(Blocker(e.key, f.key, message + " definition"))
        if planner.plan.blockers:
            return planner.plan
    return planner.run()
