"""The composition root of a runql process: what runs beside its routes, built once from the
settings and started and stopped in order. The database; the hub, fed by this process's commits
and by other processes' (runql/bus/feeders.py); on a server, the poll that hears key revocations
on SQLite; the executor, when the process executes runs. `runql serve` (runql/app.py) and
`runql worker` (runql/worker.py) each hold one."""

from dataclasses import dataclass, field, replace

from runql.agents.egress import EgressPolicy
from runql.agents.registry import default_registry
from runql.auth.revocation import Revocations
from runql.bus.feeders import Feeder, feed_from_commits, other_processes
from runql.bus.hub import Hub
from runql.bus.revocations import RevocationPoll
from runql.lifecycle.executor import Executor, ExecutorConfig
from runql.settings import Settings
from runql.storage.database import Database


def open_database(settings: Settings) -> Database:
    """The database the settings name, with their pool."""
    return Database.from_url(
        settings.database_url,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
    )


@dataclass
class Runtime:
    settings: Settings
    database: Database
    hub: Hub
    revocations: Revocations
    concurrency: int  # runs in flight at most; 0: this process executes none
    serves_clients: bool  # a server: revocations close its sockets, so it hears them on SQLite
    owns_database: bool
    executor: Executor | None = field(default=None, init=False)
    listener: Feeder | None = field(default=None, init=False)
    _poll: RevocationPoll | None = field(default=None, init=False)

    @classmethod
    def build(
        cls,
        settings: Settings,
        database: Database | None = None,
        *,
        concurrency: int | None = None,
        serves_clients: bool = True,
    ) -> "Runtime":
        """The runtime of one process. `database`: one the caller opened and keeps (tests);
        `concurrency`: the executor's, when not the settings' `workers`."""
        db = database or open_database(settings)
        hub = Hub(settings.subscriber_queue_size)
        feed_from_commits(hub, db)
        return cls(
            settings,
            db,
            hub,
            Revocations(),
            settings.workers if concurrency is None else concurrency,
            serves_clients,
            owns_database=database is None,
        )

    async def start(self) -> None:
        self.listener = other_processes(self.hub, self.database, self.revocations)
        if self.serves_clients and self.database.is_sqlite:
            self._poll = RevocationPoll(self.database, self.revocations)
        for feeder in (self.listener, self._poll):
            if feeder is not None:
                await feeder.start()
        if self.concurrency > 0:
            config = ExecutorConfig.from_settings(self.settings)
            self.executor = Executor(
                self.database,
                default_registry(EgressPolicy.from_settings(self.settings)),
                replace(config, concurrency=self.concurrency),
                hub=self.hub,
            )
            await self.executor.start()

    async def stop(self) -> None:
        """The executor first (its runs' last events still reach subscribers), then the
        feeders, then the database if this runtime opened it."""
        if self.executor is not None:
            await self.executor.stop()
        for feeder in (self.listener, self._poll):
            if feeder is not None:
                await feeder.stop()
        if self.owns_database:
            await self.database.dispose()
