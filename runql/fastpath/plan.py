"""What a plan is made of: an object's selection (its fields in response order) and the leaf
fields, which read a column of the object's row; the fields that fetch (links, lists, pages)
are in links.py, connections.py and roots.py."""

from collections.abc import Callable, Hashable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, TypeGuard

from graphql import FieldNode

from runql.fastpath.statements import Join
from runql.fastpath.values import Convert, inline_convert

if TYPE_CHECKING:
    from runql.fastpath.build import Builder, Path
    from runql.fastpath.execution import Execution, Row
else:
    Row = Any


class Field(Protocol):
    @property
    def key(self) -> str:
        """The response key: the alias, or the field's name."""

    def value(self, builder: "Builder", row: Row, path: "Path") -> Any: ...


class Fetching(Field, Protocol):
    """A field whose values come from a statement: one per level for all its parent rows."""

    @property
    def nodes(self) -> tuple[FieldNode, ...]:
        """Where the field is in the document, for errors."""

    @property
    def nullable(self) -> bool: ...

    @property
    def signature(self) -> Hashable:
        """The relation it reads, for scheduling (see fetch.py)."""

    @property
    def below(self) -> frozenset[Hashable]:
        """The signatures of the fetching fields under it."""

    @property
    def folds(self) -> "tuple[Folded, ...]":
        """The to-one fields under it that its statement reads too (see Folded)."""

    def group(self, execution: "Execution") -> Hashable | None:
        """Fields of one group share one statement; None: nothing to fetch."""

    def keys(self, execution: "Execution", rows: Sequence[Row]) -> list[str]:
        """The keys `load` reads for these rows, each once (fetch.py takes a lone field's
        as they are), without those already read."""

    async def load(
        self, execution: "Execution", keys: list[str], folds: "tuple[Folded, ...]"
    ) -> None:
        """Reads the keys' rows, and the folded fields' rows in the same statement."""

    def children(
        self, execution: "Execution", rows: Sequence[Row]
    ) -> Iterator[tuple["ObjectPlan", list[Row]]]: ...


class Folded(Fetching, Protocol):
    """A to-one fetching field read in its parent rows' statement (statements.Join): what the
    join found is kept as its own statement would keep it, so it runs none."""

    @property
    def join(self) -> Join: ...

    def absorb(
        self, execution: "Execution", parents: Sequence[Row], found: Sequence[Row | None]
    ) -> None:
        """The row joined to each parent row (None: nothing there)."""


Build = Callable[["Builder", Row, "Path"], dict[str, Any]]


class Inlined(Protocol):
    """A field whose value the compiled build writes in place, as an expression over `builder`,
    `row` and `path` (a link's lookup, a composite's dict): no call of its own a row."""

    def inline(self, number: int, names: dict[str, Any]) -> str:
        """The expression; the values it names are added to `names`, each name ending in
        `_{number}` so that fields' names do not meet."""


def _inlined(candidate: "Field") -> TypeGuard[Inlined]:
    return hasattr(candidate, "inline")


def compiled_build(fields: "tuple[Field, ...]") -> Build:
    """A function that makes an object's dict from its row in one dict display: a column read
    in place (`row[3]`, or its conversion's call), a typename as a constant, a link or a
    composite by its own expression (Inlined), any other field by its `value`, in the
    selection's order, as `{f.key: f.value(...) for f in fields}` would, without a method call
    per field. Made once per plan (plans are cached): a feed's objects are thousands of dicts a
    request."""
    names: dict[str, Any] = {}
    entries = []
    for number, found in enumerate(fields):
        if isinstance(found, Column):
            read = f"row[{found.index}]"
            if found.convert is not None:
                names[f"convert_{number}"] = found.convert
                read = f"({inline_convert(found.convert, read, f'convert_{number}', names)})"
        elif isinstance(found, Typename):
            names[f"name_{number}"] = found.name
            read = f"name_{number}"
        elif _inlined(found):
            read = f"({found.inline(number, names)})"
        else:
            names[f"value_{number}"] = found.value
            read = f"value_{number}(builder, row, path)"
        names[f"key_{number}"] = found.key
        entries.append(f"key_{number}: {read}")
    source = f"def build(builder, row, path):\n    return {{{', '.join(entries)}}}\n"
    exec(source, names)  # the source is made of numbers and names, the values are in names
    made: Build = names["build"]
    return made


@dataclass(eq=False)
class ObjectPlan:
    type_name: str
    fields: tuple[Field, ...]
    fetching: tuple[Fetching, ...] = field(init=False)
    folds: tuple[Folded, ...] = field(init=False)
    build: Build = field(init=False, repr=False)
    # whether no field under it can fail (Builder.fail): then its dict for a row is the same
    # wherever it stands, and may be built once and shared (links.ById)
    pure: bool = field(init=False)

    def __post_init__(self) -> None:
        self.fetching = tuple(f for f in self.fields if _fetches(f))
        self.folds = tuple(f for f in self.fetching if _folds(f))
        self.build = compiled_build(self.fields)
        self.pure = all(getattr(f, "pure", False) for f in self.fields)

    def below(self) -> frozenset[Hashable]:
        found: set[Hashable] = set()
        for child in self.fetching:
            found.add(child.signature)
            found.update(child.below)
        return frozenset(found)


def _fetches(candidate: Field) -> TypeGuard[Fetching]:
    return hasattr(candidate, "signature")


def _folds(candidate: Fetching) -> TypeGuard[Folded]:
    return getattr(candidate, "join", None) is not None


def distinct_folds(folds: Iterable[Folded]) -> tuple[Folded, ...]:
    """Folded fields over the same rows: one join for each relation (the same rows for any
    field that follows it)."""
    joins: dict[Join, Folded] = {}
    for folded in folds:
        joins.setdefault(folded.join, folded)
    return tuple(joins.values())


@dataclass(frozen=True, slots=True)
class Column:
    pure: ClassVar[bool] = True  # it records no failure
    key: str
    index: int
    convert: Convert | None

    def value(self, builder: "Builder", row: Row, path: "Path") -> Any:
        value = row[self.index]
        return value if self.convert is None else self.convert(value)


@dataclass(frozen=True, slots=True)
class Typename:
    pure: ClassVar[bool] = True  # it records no failure
    key: str
    name: str

    def value(self, builder: "Builder", row: Row, path: "Path") -> Any:
        return self.name


@dataclass(frozen=True, slots=True)
class Embedded:
    """An object made of the row's columns (Run.cost, Message.error), or null."""

    pure: ClassVar[bool] = True  # it records no failure

    key: str
    make: Callable[..., Sequence[Any] | None]  # the columns' values -> the fields', or None
    columns: tuple[int, ...]  # where make's columns are in the row
    fields: tuple[tuple[str, int, Convert | None], ...]  # (key, position, convert); -1: typename
    type_name: str

    def value(self, builder: "Builder", row: Row, path: "Path") -> Any:
        made = self.make(*(row[position] for position in self.columns))
        if made is None:
            return None
        return {
            key: self.type_name
            if position < 0
            else (made[position] if convert is None else convert(made[position]))
            for key, position, convert in self.fields
        }

    def inline(self, number: int, names: dict[str, Any]) -> str:
        made = f"made_{number}"
        names[f"make_{number}"] = self.make
        names[f"type_{number}"] = self.type_name
        entries = []
        for index, (key, position, convert) in enumerate(self.fields):
            names[f"key_{number}_{index}"] = key
            if position < 0:
                read = f"type_{number}"
            elif convert is None:
                read = f"{made}[{position}]"
            else:
                names[f"convert_{number}_{index}"] = convert
                read = inline_convert(
                    convert, f"{made}[{position}]", f"convert_{number}_{index}", names
                )
                read = f"({read})"
            entries.append(f"key_{number}_{index}: {read}")
        arguments = "".join(f"row[{position}], " for position in self.columns)
        return (
            f"None if ({made} := make_{number}({arguments})) is None else {{{', '.join(entries)}}}"
        )


@dataclass(eq=False)
class OperationPlan:
    """A query's root fields."""

    fields: tuple[Field, ...]
    fetching: tuple[Fetching, ...] = field(init=False)

    def __post_init__(self) -> None:
        self.fetching = tuple(f for f in self.fields if _fetches(f))

    def build(self, builder: "Builder") -> dict[str, Any]:
        return {f.key: f.value(builder, None, None) for f in self.fields}
