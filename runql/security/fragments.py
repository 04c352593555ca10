"""Walking an operation's selections through its fragments, each fragment worked out once."""

from collections.abc import Callable
from typing import Generic, TypeVar

from graphql import FragmentDefinitionNode

T = TypeVar("T")
FragmentOf = Callable[[str], FragmentDefinitionNode | None]


class FragmentMemo(Generic[T]):
    """Each fragment's value, computed once per key: a document that spreads fragments into
    fragments costs linear time, not exponential. A cycle counts as `empty` (another rule
    reports it)."""

    def __init__(self, fragment_of: FragmentOf, empty: T) -> None:
        self.fragment_of = fragment_of
        self.empty = empty
        self.values: dict[object, T] = {}
        self.active: set[str] = set()

    def get(self, name: str, key: object, compute: Callable[[FragmentDefinitionNode], T]) -> T:
        memo_key = (name, key)
        if memo_key in self.values:
            return self.values[memo_key]
        fragment = self.fragment_of(name)
        if fragment is None or name in self.active:
            return self.empty
        self.active.add(name)
        try:
            value = compute(fragment)
        finally:
            self.active.discard(name)
        self.values[memo_key] = value
        return value
