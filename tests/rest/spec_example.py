"""The spec's examples: the Run object as published (and its key tree), and its curl calls.

The published Run example stops at `started_at`; the attribute list above it goes on with
`created_at` and `completed_at`, which SPEC_RUN_KEYS appends in that order.
"""

import json
from typing import Any

import orjson

# What curl sends with `-H "Authorization: …"` and `-d '{…}'`: a JSON body labelled as a form.
CURL_GET_HEADERS = {"Accept": "*/*", "User-Agent": "curl/8.5.0"}
CURL_POST_HEADERS = {**CURL_GET_HEADERS, "Content-Type": "application/x-www-form-urlencoded"}

SPEC_POST_BODY = {
    "language": "en",
    "country": "US",
    "timezone": "America/New_York",
    "agent_id": "agent_Rm4Mnheq2bfEPhBhP7SY",
    "content": "Hello, world!",
    "raw_inputs": {"text": "Hello, world!"},
}


def spec_post_body(agent_id: str) -> bytes:
    """The spec's example body, as `-d` sends it, for an agent that exists."""
    return orjson.dumps({**SPEC_POST_BODY, "agent_id": agent_id})


SPEC_EXAMPLE = json.loads(r"""
{
    "id": "run_Rm4Mnheq2bfEPhBhP7SY",
    "status": "success",
    "agent_id": "agent_Rm4Mnheq2bfEPhBhP7SY",
    "trigger_message_group_id": "mgrp_Rm4Mnheq2bfEPhBhP7SY",
    "cost": {
        "amount": 1,
        "unit": "metorial_credits"
    },
    "message_group": {
        "id": "msg_Rm4Mnheq2bfEPhBhP7SY",
        "status": "completed",
        "type": "assistant_message",
        "created_at": "2025-01-01T00:00:00.000Z",
        "thread_id": "thread_Rm4Mnheq2bfEPhBhP7SY",
        "parent_message_group_id": "mgrp_Rm4Mnheq2bfEPhBhP7SY",
        "metadata": {
            "key": "value"
        },
        "messages": [
            {
                "id": "msg_Rm4Mnheq2bfEPhBhP7SY",
                "status": "active",
                "type": "content",
                "message_group_id": "mgrp_Rm4Mnheq2bfEPhBhP7SY",
                "thread_id": "thread_Rm4Mnheq2bfEPhBhP7SY",
                "actor": {
                    "id": "act_Rm4Mnheq2bfEPhBhP7SY",
                    "name": "John Doe",
                    "type": "user",
                    "metadata": {
                        "email": "[email\u00a0protected]",
                        "other": "Additional metadata can be included here."
                    },
                    "created_at": "2025-01-01T00:00:00.000Z",
                    "updated_at": "2025-01-01T00:00:00.000Z"
                },
                "content": {
                    "id": "cnt_Rm4Mnheq2bfEPhBhP7SY",
                    "message_item_id": "msg_Rm4Mnheq2bfEPhBhP7SY",
                    "attachments": [
                        {
                            "id": "att_Rm4Mnheq2bfEPhBhP7SY",
                            "type": "file",
                            "file_id": "file_Rm4Mnheq2bfEPhBhP7SY",
                            "url": "https://example.com/file_Rm4Mnheq2bfEPhBhP7SY",
                            "caption": "Example file"
                        }
                    ],
                    "parts": [
                        {
                            "id": "part_Rm4Mnheq2bfEPhBhP7SY",
                            "type": "text",
                            "text": "Example text"
                        }
                    ]
                },
                "error": null,
                "created_at": "2025-01-01T00:00:00.000Z"
            },
            {
                "id": "msg_Rm4Mnheq2bfEPhBhP7SY",
                "status": "active",
                "type": "content",
                "message_group_id": "mgrp_Rm4Mnheq2bfEPhBhP7SY",
                "thread_id": "thread_Rm4Mnheq2bfEPhBhP7SY",
                "actor": {
                    "id": "act_Rm4Mnheq2bfEPhBhP7SY",
                    "name": "John Doe",
                    "type": "user",
                    "metadata": {
                        "email": "[email\u00a0protected]",
                        "other": "Additional metadata can be included here."
                    },
                    "created_at": "2025-01-01T00:00:00.000Z",
                    "updated_at": "2025-01-01T00:00:00.000Z"
                },
                "content": {
                    "id": "cnt_Rm4Mnheq2bfEPhBhP7SY",
                    "message_item_id": "msg_Rm4Mnheq2bfEPhBhP7SY",
                    "attachments": [
                        {
                            "id": "att_Rm4Mnheq2bfEPhBhP7SY",
                            "type": "file",
                            "file_id": "file_Rm4Mnheq2bfEPhBhP7SY",
                            "url": "https://example.com/file_Rm4Mnheq2bfEPhBhP7SY",
                            "caption": "Example file"
                        }
                    ],
                    "parts": [
                        {
                            "id": "part_Rm4Mnheq2bfEPhBhP7SY",
                            "type": "text",
                            "text": "Example text"
                        }
                    ]
                },
                "error": null,
                "created_at": "2025-01-01T00:00:00.000Z"
            }
        ],
        "attached_items": [
            {
                "id": "itm_Rm4Mnheq2bfEPhBhP7SY",
                "actor": {
                    "id": "act_Rm4Mnheq2bfEPhBhP7SY",
                    "name": "John Doe",
                    "type": "user",
                    "metadata": {
                        "email": "[email\u00a0protected]",
                        "other": "Additional metadata can be included here."
                    },
                    "created_at": "2025-01-01T00:00:00.000Z",
                    "updated_at": "2025-01-01T00:00:00.000Z"
                },
                "key": "example_key",
                "value": {
                    "example": "value"
                },
                "created_at": "2025-01-01T00:00:00.000Z"
            }
        ],
        "run": {
            "id": "run_Rm4Mnheq2bfEPhBhP7SY",
            "agent_id": "act_Rm4Mnheq2bfEPhBhP7SY",
            "status": "success",
            "metadata": {
                "key": "value"
            },
            "started_at": "2025-01-01T00:00:00.000Z",
            "created_at": "2025-01-01T00:00:00.000Z",
            "completed_at": "2025-01-01T00:00:00.000Z"
        }
    },
    "errors": [
        {
            "id": "err_Rm4Mnheq2bfEPhBhP7SY",
            "run_id": "run_Rm4Mnheq2bfEPhBhP7SY",
            "code": "ERR001",
            "message": "An error occurred.",
            "metadata": {
                "additional": "Additional metadata."
            },
            "created_at": "2025-01-01T00:00:00.000Z"
        }
    ],
    "attached_items": [
        {
            "id": "itm_Rm4Mnheq2bfEPhBhP7SY",
            "actor": {
                "id": "act_Rm4Mnheq2bfEPhBhP7SY",
                "name": "John Doe",
                "type": "user",
                "metadata": {
                    "email": "[email\u00a0protected]",
                    "other": "Additional metadata can be included here."
                },
                "created_at": "2025-01-01T00:00:00.000Z",
                "updated_at": "2025-01-01T00:00:00.000Z"
            },
            "key": "example_key",
            "value": {
                "example": "value"
            },
            "created_at": "2025-01-01T00:00:00.000Z"
        },
        {
            "id": "itm_Rm4Mnheq2bfEPhBhP7SY",
            "actor": {
                "id": "act_Rm4Mnheq2bfEPhBhP7SY",
                "name": "John Doe",
                "type": "user",
                "metadata": {
                    "email": "[email\u00a0protected]",
                    "other": "Additional metadata can be included here."
                },
                "created_at": "2025-01-01T00:00:00.000Z",
                "updated_at": "2025-01-01T00:00:00.000Z"
            },
            "key": "example_key",
            "value": {
                "example": "value"
            },
            "created_at": "2025-01-01T00:00:00.000Z"
        }
    ],
    "started_at": "2025-03-14T14:14:46.475Z"
}
""")

KeyTree = dict[str, Any]

FREE_FORM = frozenset({"metadata", "value"})  # their keys are data, not the object's shape


def key_tree(value: Any) -> Any:
    """The keys of a JSON value, nested: an object's keys in order, a list as its first item's
    tree in a one-item list, and None for anything else (a leaf)."""
    if isinstance(value, dict):
        return {key: None if key in FREE_FORM else key_tree(child) for key, child in value.items()}
    if isinstance(value, list) and value:
        return [key_tree(value[0])]
    return None


SPEC_RUN_KEYS: KeyTree = {**key_tree(SPEC_EXAMPLE), "created_at": None, "completed_at": None}


def tree_paths(tree: Any, path: str = "") -> set[str]:
    """Every key of a key tree, as a path such as `message_group.messages[].actor.id`."""
    if isinstance(tree, list):
        return tree_paths(tree[0], f"{path}[]")
    if not isinstance(tree, dict):
        return set()
    found: set[str] = set()
    for key, child in tree.items():
        where = f"{path}.{key}" if path else key
        found |= {where, *tree_paths(child, where)}
    return found


def check_spec_keys(document: Any, tree: Any = SPEC_RUN_KEYS, path: str = "") -> set[str]:
    """Assert that the document has every key of the spec's example, in the example's order,
    wherever it has a value; return the paths it showed (a null object shows none below)."""
    if tree is None or document is None:
        return set()
    if isinstance(tree, list):
        assert isinstance(document, list), f"{path} is not a list"
        return set().union(*(check_spec_keys(item, tree[0], f"{path}[]") for item in document))
    assert isinstance(document, dict), f"{path or 'the document'} is not an object"
    shown = [key for key in document if key in tree]
    assert shown == list(tree), f"{path or 'the run'} has keys {list(document)}, not {list(tree)}"
    seen: set[str] = set()
    for key, child in tree.items():
        where = f"{path}.{key}" if path else key
        seen |= {where, *check_spec_keys(document[key], child, where)}
    return seen
