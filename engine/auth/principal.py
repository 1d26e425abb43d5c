"""Who is acting, and what they may do: the one object every permission check reads.

Roles are data (table `crm_roles`); a user's roles are merged into a Principal when they log in or use a token.
The records service and the definition service check the Principal; nothing else decides permissions."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["ACTIONS", "SYSTEM", "EntityGrant", "Principal", "merge_grants"]

#: What a role can allow per entity.
ACTIONS = ("read", "create", "update", "delete", "export", "import")


@dataclass(frozen=True)
class EntityGrant:
    """What a principal may do with one entity's records."""

    actions: frozenset[str] = frozenset()
    own_only: bool = False  # only records the user owns (owner_field, else created_by)
    owner_field: str | None = None
    hidden: frozenset[str] = frozenset()  # fields that never leave the server for this principal
    read_only: frozenset[str] = frozenset()

    def allows(self, action: str) -> bool:
        """Whether the action is granted."""
        return action in self.actions


FULL = EntityGrant(actions=frozenset(ACTIONS))
NONE = EntityGrant()


@dataclass(frozen=True)
class Principal:
    """An acting user (or the system). `name` is what history and the audit log record (the user's email)."""

    name: str
    user_id: str | None = None
    is_admin: bool = False
    designer: bool = False
    roles: tuple[str, ...] = ()
    grants: Mapping[str, Mapping[str, EntityGrant]] = field(default_factory=dict)  # app -> entity -> grant

    def grant(self, app: str, entity: str) -> EntityGrant:
        """The grant for an entity (admins may do everything)."""
        if self.is_admin:
            return FULL
        return self.grants.get(app, {}).get(entity, self.grants.get("*", {}).get("*", NONE))

    def can(self, app: str, entity: str, action: str) -> bool:
        """Whether this principal may do `action` on `entity`."""
        return self.grant(app, entity).allows(action)

    @property
    def can_design(self) -> bool:
        """Whether this principal may change app definitions."""
        return self.is_admin or self.designer


#: The engine itself and the command line without --as-user: trusted, not subject to roles.
SYSTEM = Principal(name="system", is_admin=True)


def _grant_from(raw: Mapping[str, Any]) -> EntityGrant:
    fields = raw.get("fields", {})
    return EntityGrant(
        actions=frozenset(a for a in ACTIONS if raw.get(a)),
        own_only=raw.get("records", "all") == "own",
        owner_field=raw.get("owner_field"),
        hidden=frozenset(k for k, v in fields.items() if v == "hidden"),
        read_only=frozenset(k for k, v in fields.items() if v == "read_only"),
    )


def merge_grants(role_permissions: list[Mapping[str, Any]]) -> dict[str, dict[str, EntityGrant]]:
    """Combine several roles' permission documents: an action allowed by any role is allowed; a field is hidden
    (or read-only) only if every role granting the entity hides it; "all records" wins over "own".

    A permission document is {app: {entity: {"read": true, ..., "records": "all"|"own", "owner_field": "owner",
    "fields": {field: "hidden"|"read_only"}}}}; "*" stands for every app or entity."""
    merged: dict[str, dict[str, EntityGrant]] = {}
    for doc in role_permissions:
        for app, entities in doc.items():
            for entity, raw in entities.items():
                new = _grant_from(raw)
                old = merged.setdefault(app, {}).get(entity)
                if old is None:
                    merged[app][entity] = new
                    continue
                merged[app][entity] = EntityGrant(
                    actions=old.actions | new.actions,
                    own_only=old.own_only and new.own_only,
                    owner_field=old.owner_field or new.owner_field,
                    hidden=old.hidden & new.hidden,
                    read_only=(old.read_only | old.hidden) & (new.read_only | new.hidden) - (old.hidden & new.hidden),
                )
    return merged
