"""Prefixed, random identifiers: the ids clients see everywhere (`run_Rm4Mnheq2bfEPhBhP7SY`)."""

import re
import secrets
import string
from enum import StrEnum

from runql.errors import BadUserInput

_ALPHABET = string.ascii_letters + string.digits
_RANDOM_LENGTH = 20


class Kind(StrEnum):
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
    ORGANIZATION = "org"
    API_KEY = "key"


_PREFIXES = "|".join(kind.value for kind in Kind)
_ID_PATTERN = re.compile(f"({_PREFIXES})_[A-Za-z0-9]{{{_RANDOM_LENGTH}}}")


def id_pattern(kind: Kind) -> str:
    """A regular expression that matches exactly the ids of `kind`."""
    return f"^{kind.value}_[A-Za-z0-9]{{{_RANDOM_LENGTH}}}$"


# Random bytes below 248 (4 x 62) map evenly onto the alphabet; the others are dropped. One
# translate of 32 bytes gives 20 letters all but about once in 10^11 draws (then it draws again),
# at a twentieth of the cost of a secrets.choice a letter.
_EVEN = 4 * len(_ALPHABET)
_TO_LETTER = bytes(_ALPHABET.encode()[byte % len(_ALPHABET)] for byte in range(256))
_UNEVEN = bytes(range(_EVEN, 256))


def new_id(kind: Kind) -> str:
    letters = b""
    while len(letters) < _RANDOM_LENGTH:
        letters += secrets.token_bytes(32).translate(_TO_LETTER, _UNEVEN)
    return f"{kind.value}_{letters[:_RANDOM_LENGTH].decode()}"


def kind_of(value: str) -> Kind | None:
    """The kind an id names, or None when it is not a well-formed runql id."""
    match = _ID_PATTERN.fullmatch(value)
    return _KINDS[match.group(1)] if match else None


_KINDS = {kind.value: kind for kind in Kind}  # Kind(prefix), without the enum's call


def require(value: str, expected: Kind | None, field: str) -> Kind:
    """The kind of a well-formed id, of the expected kind if one is given; else BadUserInput."""
    kind = kind_of(value)
    if kind is None:
        raise BadUserInput(
            f"{value!r} is not a runql id (a prefix such as run_ and 20 letters or digits)",
            field=field,
        )
    if expected is not None and kind is not expected:
        raise BadUserInput(
            f"{value!r} names a {kind.value}_ object; {field} takes {expected.value}_ ids",
            field=field,
        )
    return kind
