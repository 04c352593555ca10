"""The run graph as the planner reads it: for each GraphQL object type, its table and the fields
that are not a plain column, all taken from runql.storage.graph (a relation or composite value
`trigger_message_group` is the field `triggerMessageGroup`, strawberry's name for it) but for
`Agent.config`, which GraphQL shows its own way. A plain field reads the column its strawberry
field names, as the default resolver does; a field with a resolver of its own that is not
declared here is not covered (the planner says Unsupported)."""

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Table
from strawberry.utils.str_converters import to_camel_case

from runql.agents.secrets import shown_config
from runql.fastpath.values import decoded
from runql.ids import Kind
from runql.schema.arguments import Check, groups_of, root_agents, root_runs, root_threads, runs_of
from runql.storage import graph
from runql.storage.graph import Composite, Paged, Relation, ToMany, ToOne, WriterOf

__all__ = ["Composite", "Paged", "ToMany", "ToOne", "WriterOf"]


@dataclass(frozen=True)
class Shown:
    """A leaf computed from one column."""

    column: str
    convert: Callable[[Any], Any]


Spec = Relation | Composite | Shown


@dataclass(frozen=True)
class TypeModel:
    table: Table
    fields: dict[str, Spec] = field(default_factory=dict)


def _config(value: Any) -> Any:
    """Agent.config: the fast path reads the stored JSON undecoded, so it decodes it before
    hiding header values and URL credentials with the resolver's own function."""
    return shown_config(decoded(value))


# GraphQL's fields that the graph does not declare, by type.
_OWN: dict[str, dict[str, Spec]] = {"Agent": {"config": Shown("config", _config)}}


def _fields(found: graph.Object) -> dict[str, Spec]:
    fields: dict[str, Spec] = {to_camel_case(name): link for name, link in found.relations.items()}
    fields.update({to_camel_case(name): made for name, made in found.composites.items()})
    fields.update(_OWN.get(found.name, {}))
    return fields


TYPES: dict[str, TypeModel] = {
    name: TypeModel(found.table, _fields(found)) for name, found in graph.NODES.items()
}

# What a subscription's events may be: every object of the graph (RunEvent too, which has no
# id of its own and which queries reach through no planned field).
EVENT_TYPES: dict[str, TypeModel] = {
    name: TypeModel(found.table, _fields(found)) for name, found in graph.OBJECTS.items()
}

# What `node(id:)` finds for each kind of id: the object of that kind.
NODE_TYPES: dict[Kind, str] = {kind: found.name for kind, found in graph.BY_KIND.items()}

# The root fields that find one object by id, and the kind of id each takes.
ROOT_OBJECTS: dict[str, Kind] = {
    "run": Kind.RUN,
    "agent": Kind.AGENT,
    "thread": Kind.THREAD,
    "messageGroup": Kind.MESSAGE_GROUP,
    "actor": Kind.ACTOR,
}

# The root connections: the type listed and the check of their arguments.
ROOT_LISTS: dict[str, tuple[str, Check]] = {
    "runs": ("Run", root_runs),
    "agents": ("Agent", root_agents),
    "threads": ("Thread", root_threads),
}

# The check of the arguments of an object's list (a Paged relation), by the type listed.
LIST_CHECKS: dict[str, Check] = {"Run": runs_of, "MessageGroup": groups_of}
