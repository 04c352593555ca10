"""Executing a plan: its statements on one raw connection (each its own snapshot), then the
response; a point read (point.py) straight to the response's bytes."""

from graphql import ExecutionResult

from runql.fastpath.arguments import Arguments
from runql.fastpath.build import Builder
from runql.fastpath.execution import Execution
from runql.fastpath.fetch import fetch
from runql.fastpath.plan import OperationPlan
from runql.fastpath.point import PointRead
from runql.fastpath.settle import settle
from runql.storage.database import Database
from runql.storage.raw import loop_reads, raw_reads


async def run_plan(
    plan: OperationPlan, database: Database, org_id: str, arguments: Arguments
) -> ExecutionResult:
    reads = loop_reads(database)
    if reads is not None:
        execution = Execution(reads, org_id, arguments)
        await fetch(execution, plan)
    else:
        async with raw_reads(database) as held:
            execution = Execution(held, org_id, arguments)
            await fetch(execution, plan)
    builder = Builder(execution)
    data, errors = settle(plan.build(builder), builder.failures)
    return ExecutionResult(data, errors or None)


async def run_point(
    point: PointRead, database: Database, org_id: str, arguments: Arguments
) -> bytes | None:
    """The point read's body, on the connection run_plan would use."""
    reads = loop_reads(database)
    if reads is not None:
        return await point.body(reads, org_id, arguments)
    async with raw_reads(database) as held:
        return await point.body(held, org_id, arguments)
