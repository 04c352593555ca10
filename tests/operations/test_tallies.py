"""Tallied observations (runql/operations/metrics.py: Tally, Pending) read as the instruments
read when each observation goes to them at once: the same exposition, bucket by bucket."""

import re
import threading

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from runql.operations.metrics import SECONDS, Pending

AMOUNTS = [0.0, 0.004, 0.005, 0.0051, 0.3, 2.5, 29.0, 31.0, 1e9, 0.005]


def _instruments(registry: CollectorRegistry) -> tuple[Counter, Histogram]:
    counter = Counter("served", "Served.", ["route"], registry=registry)
    histogram = Histogram("took", "Took.", ["route"], buckets=SECONDS, registry=registry)
    return counter, histogram


def _exposition(registry: CollectorRegistry) -> str:
    """Without the `_created` lines (each instrument's own creation time)."""
    text = generate_latest(registry).decode()
    return "\n".join(line for line in text.splitlines() if not re.search(r"_created[{ ]", line))


def test_tallies_flushed_by_a_collection_expose_what_direct_observations_do() -> None:
    direct = CollectorRegistry()
    counter, histogram = _instruments(direct)
    tallied = CollectorRegistry()
    pending = Pending()
    tallied.register(pending)
    later_counter, later_histogram = _instruments(tallied)
    count = pending.tally(later_counter.labels("/graphql"))
    took = pending.tally(later_histogram.labels("/graphql"))
    for amount in AMOUNTS:
        counter.labels("/graphql").inc()
        histogram.labels("/graphql").observe(amount)
        count.add()
        took.add(amount)
    assert tallied.get_sample_value("served_total", {"route": "/graphql"}) == len(AMOUNTS)
    assert _exposition(tallied) == _exposition(direct)
    for amount in AMOUNTS[:3]:  # again, after a flush: added to what is there
        histogram.labels("/graphql").observe(amount)
        took.add(amount)
    assert _exposition(tallied) == _exposition(direct)


def test_a_collection_on_another_thread_leaves_the_tallies_to_their_own() -> None:
    registry = CollectorRegistry()
    pending = Pending()
    registry.register(pending)
    counter, _ = _instruments(registry)
    tally = pending.tally(counter.labels("/graphql"))
    tally.add()
    seen: list[float | None] = []
    other = threading.Thread(
        target=lambda: seen.append(registry.get_sample_value("served_total", {"route": "/graphql"}))
    )
    other.start()
    other.join()
    assert seen == [0.0]
    assert registry.get_sample_value("served_total", {"route": "/graphql"}) == 1.0
