"""Executing a plan: its statements on one raw connection (each its own snapshot), then the
response."""

from graphql import ExecutionResult

from runql.fastpath.arguments import Arguments
from runql.fastpath.build import Builder
from runql.fastpath.execution import Execution
from runql.fastpath.fetch import fetch
from runql.fastpath.plan import OperationPlan
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
