"""Prefixed, random identifiers: the ids clients see everywhere (`run_Rm4Mnheq2bfEPhBhP7SY`)."""

import re
import secrets
import string
from enum import Enum

_ALPHABET = string.ascii_letters + string.digits
_RANDOM_LENGTH = 20


class Kind(str, Enum):
    """What an id names, by its prefix."""

    RUN = "run"
    AGENT = "agent"
    THREAD = "thread"
    MESSAGE_GROUP = "mgrp"
    MESSAGE = "msg"
    ACTOR = "act"
    CONTENT = "cnt"
    PART = "part"
    ATTACHMENT = "att"
    FILE = "file"
    ITEM = "itm"
    ERROR = "err"


_ID_PATTERN = re.compile(
    r"^(" + "|".join(k.value for k in Kind) + r")_[A-Za-z0-9_-]{%d}$" % _RANDOM_LENGTH
)


def new_id(kind: Kind) -> str:
    suffix = "".join(secrets.choice(_ALPHABET) for _ in range(_RANDOM_LENGTH))
    return f"{kind.value}_{suffix}"


def kind_of(value: str) -> Kind | None:
    """The kind an id names, or None when it is not a well-formed runql id."""
    match = _ID_PATTERN.match(value)
    return Kind(match.group(1)) if match else None
