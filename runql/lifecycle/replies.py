"""Whether an agent's reply can be stored: its texts by runql.text's rule, its attached values
under the caps of stored JSON. A reply that cannot is the agent's error (`invalid_reply`), so
its run ends at once instead of waiting for its lease to expire."""

from dataclasses import asdict

from runql.agents.protocol import AgentError, AgentReply
from runql.errors import BadUserInput
from runql.text import JsonCaps, check_stored_json, check_value

INVALID_REPLY = "invalid_reply"


def _check(reply: AgentReply, caps: JsonCaps) -> None:
    for index, message in enumerate(reply.messages):
        check_value(asdict(message), f"messages[{index}]")
    for index, item in enumerate(reply.attached_items):
        check_value(item.key, f"attached_items[{index}].key")
        check_stored_json(item.value, f"attached_items[{index}].value", caps)
    if reply.cost is not None:
        check_value(asdict(reply.cost), "cost")


def storable(reply: AgentReply, caps: JsonCaps) -> AgentReply | AgentError:
    """The reply, or the error that ends its run."""
    try:
        _check(reply, caps)
    except BadUserInput as error:
        return AgentError(INVALID_REPLY, f"The agent's reply cannot be stored: {error.message}.")
    return reply


def unwritable(error: Exception) -> AgentError:
    """The error that ends a run whose reply passed the checks but failed to be written."""
    return AgentError(
        INVALID_REPLY, f"The agent's reply could not be stored ({type(error).__name__})."
    )
