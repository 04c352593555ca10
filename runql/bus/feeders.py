"""What feeds a hub. In one process: the database's commit listener. Across processes a
feeder (PostgreSQL LISTEN/NOTIFY, Redis) publishes the same notices; subscription code does
not change."""

from runql.bus.hub import Hub, Notice
from runql.storage.database import Database
from runql.storage.events import RunEvent


def feed_from_commits(hub: Hub, database: Database) -> None:
    """Publish a notice for every run event this process commits."""

    def publish(event: RunEvent) -> None:
        hub.publish(Notice(event.org_id, event.run_id, event.seq))

    database.on_commit(publish)
