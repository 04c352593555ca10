"""What sends an operation to the standard executor."""

from sqlalchemy.exc import SQLAlchemyError


class Unsupported(Exception):
    """The planner does not cover this operation (found when planning, once per document)."""


class Fallback(Exception):
    """This execution met something the fast path would not answer as the standard path does
    (found while executing): the standard executor runs the operation instead."""


# What a fast execution may meet that the standard path reports in its own words: the fast path
# declines it (executor.py runs the standard executor; the lane hands the request to the view).
DECLINED: tuple[type[Exception], ...] = (Fallback, SQLAlchemyError)
