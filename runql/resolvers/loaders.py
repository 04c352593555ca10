"""Per-request DataLoaders, derived from the run graph (runql.storage.graph): one loader per
object by id, and one per relation, batched by the key the relation names. Each batch reads in
a short session of its own."""

from collections import defaultdict
from collections.abc import Awaitable, Callable, Hashable, Sequence
from typing import Any, TypeVar

from sqlmodel import SQLModel

from runql.limits import MAX_BATCH
from runql.resolvers.batching import BatchLoader
from runql.storage import pages, reads
from runql.storage.database import Database
from runql.storage.filters import RunFilter
from runql.storage.graph import OBJECTS, Paged, ToMany, ToOne, WriterOf, read_with
from runql.storage.pages import Page, PageRequest
from runql.storage.tables import RunRow

K = TypeVar("K")
V = TypeVar("V")

PageKey = tuple[str, RunFilter | None, PageRequest]
CountKey = tuple[str, RunFilter | None]


class Loaders:
    """Everything a request reads, batched. Build one per request (or per event).

    Each loader is made when first used, so a fresh set costs almost nothing. Objects are
    looked up by id only in the caller's organization; what hangs below them belongs to the
    same one. `batch_size=1` turns batching off: one query per object, the
    naive N+1 way (benchmarks compare against it).
    """

    def __init__(self, database: Database, org_id: str, *, batch_size: int = MAX_BATCH) -> None:
        self._db = database
        self.org_id = org_id
        self._batch_size = batch_size
        self._made: dict[Hashable, BatchLoader[Any, Any]] = {}

    @property
    def run(self) -> BatchLoader[str, RunRow | None]:
        return self.by_id("Run")

    def by_id(self, name: str) -> BatchLoader[str, Any]:
        """The objects `name` (Run, Agent, …) by id, in the caller's organization."""
        return self._once(name, lambda: self._rows_by_id(OBJECTS[name].row))

    def children(self, relation: ToMany) -> BatchLoader[str, Any]:
        """A relation's rows by their parent's id: a list each, or one row or None."""
        return self._once(relation, lambda: self._children(relation))

    def pages(self, relation: Paged) -> BatchLoader[PageKey, Page[Any]]:
        return self._once(("pages", relation), lambda: self._pages(relation))

    def counts(self, relation: Paged) -> BatchLoader[CountKey, int]:
        return self._once(("counts", relation), lambda: self._counts(relation))

    def writer(self, relation: WriterOf) -> BatchLoader[str, Any]:
        return self._once(relation, lambda: self._writers(relation))

    def _once(
        self, key: Hashable, load: Callable[[], Callable[[list[Any]], Awaitable[Sequence[Any]]]]
    ) -> BatchLoader[Any, Any]:
        """The loader made under `key`, made now (from `load()`) if it is not yet."""
        made = self._made.get(key)
        if made is None:
            made = self._made[key] = self._loader(load())
        return made

    def _loader(self, load: Callable[[list[K]], Awaitable[Sequence[V]]]) -> BatchLoader[K, V]:
        return BatchLoader(load, max_batch_size=self._batch_size)

    def _rows_by_id(self, table: type[SQLModel]) -> Callable[[list[str]], Awaitable[list[Any]]]:
        async def load(ids: list[str]) -> list[Any]:
            async with self._db.read() as session:
                return await reads.rows_by_id(session, table, ids, self.org_id)

        return load

    def _primes(self, relation: ToMany) -> list[Callable[[Any, Any], None]]:
        """How each row read beside a child primes its loader (then the next level needs no
        statement of its own), in the order of the relation's `read_with`."""
        child = OBJECTS[relation.target]
        primes: list[Callable[[Any, Any], None]] = []
        for name in relation.read_with:
            link = child.relations[name]
            if isinstance(link, ToOne):
                primes.append(_prime_found(self.by_id(link.target)))
            elif isinstance(link, ToMany):
                primes.append(_prime_child(self.children(link)))
        return primes

    def _children(self, relation: ToMany) -> Callable[[list[str]], Awaitable[list[Any]]]:
        table = OBJECTS[relation.target].row
        joined = read_with(relation)

        async def load(parent_ids: list[str]) -> list[Any]:
            async with self._db.read() as session:
                found = await reads.rows_by_parent(
                    session, table, relation.parent, parent_ids, relation.order, joined
                )
            primes = self._primes(relation)
            for rows in found:
                for row, *beside in rows:
                    for prime, value in zip(primes, beside, strict=True):
                        prime(row, value)
            if relation.one:
                return [rows[0][0] if rows else None for rows in found]
            return [[row[0] for row in rows] for rows in found]

        return load

    def _writers(self, relation: WriterOf) -> Callable[[list[str]], Awaitable[list[Any]]]:
        table = OBJECTS[relation.target].row

        async def load(ids: list[str]) -> list[Any]:
            async with self._db.read() as session:
                return await reads.writers(session, table, relation.wrote, relation.triggered, ids)

        return load

    def _pages(self, relation: Paged) -> Callable[[list[PageKey]], Awaitable[list[Page[Any]]]]:
        table = OBJECTS[relation.target].row

        async def load(keys: list[PageKey]) -> list[Page[Any]]:
            by_request: defaultdict[tuple[RunFilter | None, PageRequest], list[str]] = defaultdict(
                list
            )
            for parent_id, run_filter, page in keys:
                by_request[(run_filter, page)].append(parent_id)
            found: dict[PageKey, Page[Any]] = {}
            async with self._db.read() as session:
                for (run_filter, page), parent_ids in by_request.items():
                    conditions = run_filter.conditions() if run_filter else []
                    results = await pages.fetch_pages_by_parent(
                        session, table, relation.parent, parent_ids, conditions, page
                    )
                    for parent_id, result in zip(parent_ids, results, strict=True):
                        found[(parent_id, run_filter, page)] = result
            return [found[key] for key in keys]

        return load

    def _counts(self, relation: Paged) -> Callable[[list[CountKey]], Awaitable[list[int]]]:
        table = OBJECTS[relation.target].row

        async def load(keys: list[CountKey]) -> list[int]:
            by_filter: defaultdict[RunFilter | None, list[str]] = defaultdict(list)
            for parent_id, run_filter in keys:
                by_filter[run_filter].append(parent_id)
            found: dict[CountKey, int] = {}
            async with self._db.read() as session:
                for run_filter, parent_ids in by_filter.items():
                    conditions = run_filter.conditions() if run_filter else []
                    counts = await reads.counts_by_parent(
                        session, table, relation.parent, parent_ids, *conditions
                    )
                    for parent_id, count in zip(parent_ids, counts, strict=True):
                        found[(parent_id, run_filter)] = count
            return [found[key] for key in keys]

        return load


def _prime_found(loader: BatchLoader[str, Any]) -> Callable[[Any, Any], None]:
    """Prime an object found by a child's to-one link, where there is one."""

    def prime(_child: Any, row: Any) -> None:
        if row is not None:
            loader.prime(row.id, row)

    return prime


def _prime_child(loader: BatchLoader[str, Any]) -> Callable[[Any, Any], None]:
    """Prime a child's one child, or that it has none."""

    def prime(child: Any, row: Any) -> None:
        loader.prime(child.id, row)

    return prime
