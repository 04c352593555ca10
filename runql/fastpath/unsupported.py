"""What sends an operation to the standard executor."""


class Unsupported(Exception):
    """The planner does not cover this operation (found when planning, once per document)."""


class Fallback(Exception):
    """This execution met something the fast path would not answer as the standard path does
    (found while executing): the standard executor runs the operation instead."""
