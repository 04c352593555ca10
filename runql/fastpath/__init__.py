"""The fast path for read operations: a query is planned once from its selection set, each
level of the run graph is fetched in one batched statement, and the response is built as
plain dicts, with exactly the data, errors and key order the standard executor gives.

- executor.py: the hook, strawberry's execution context class; a query the planner covers runs
  its plan, anything else (and any execution the plan would not answer alike) runs on
  graphql-core's executor;
- planner.py: operation -> plan, through model.py (the run graph: tables, links, lists), made
  of plan.py (objects, leaves), links.py, connections.py and roots.py; cache.py keeps plans;
- run.py: a plan's execution: fetch.py schedules the statements (statements.py) level by
  level, execution.py holds what they found, build.py and values.py make the response,
  settle.py applies errors and nulls; arguments.py checks arguments with the schema's own checks;
- lane.py: the fast lane, a covered query from request bytes to response bytes past the HTTP
  view (the endpoint offers it each POST of JSON), with prepared.py's parsed and validated
  operations; everything else goes to the view;
- persisted.py: Automatic Persisted Queries; report.py: `extensions.executor` in development;
  switch.py: `standard_only()`.
"""
