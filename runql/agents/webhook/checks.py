"""How a refused value is told to whoever sent it: where it is (`messages[0].parts[0].type`)
and what it must be, from a pydantic validation error. The webhook's config and its reply
declare their rules as pydantic models; the sentences people read are made here."""

from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError, ValidatorFunctionWrapHandler, WrapValidator
from pydantic_core import ErrorDetails, PydanticCustomError

from runql.agents.protocol import InvalidConfig

M = TypeVar("M", bound=BaseModel)

# A custom error whose message is a whole sentence, said as it is.
SENTENCE = "sentence"
# A custom error whose message follows the place of the value ("must be a string, not 5").
MISFIT = "misfit"

_CONTAINERS = {
    "model_type": "an object",
    "model_attributes_type": "an object",
    "dict_type": "an object",
    "list_type": "a list",
}


def short(value: object) -> str:
    """`value` as Python writes it, cut to 40 characters."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def must_be(phrase: str, *, echo: bool = True) -> WrapValidator:
    """A validator saying that a value that fails the rules within it must be `phrase`; with
    `echo`, the value is shown too (never for values that may hold credentials)."""

    def check(value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        try:
            return handler(value)
        except ValidationError:
            given = f", not {short(value)}" if echo else ""
            raise PydanticCustomError(
                MISFIT, "must be {phrase}{given}", {"phrase": phrase, "given": given}
            ) from None

    return WrapValidator(check)


def sentence(text: str) -> PydanticCustomError:
    """An error said as `text`, whatever the value's place."""
    return PydanticCustomError(SENTENCE, "{text}", {"text": text})


def misfit(text: str) -> PydanticCustomError:
    """An error said as the value's place followed by `text` ("has no file_id or url")."""
    return PydanticCustomError(MISFIT, "{text}", {"text": text})


def path(location: Sequence[int | str], subject: str) -> str:
    """`("messages", 0, "parts")` as `messages[0].parts`; the empty path is `subject`."""
    text = ""
    for step in location:
        text += f"[{step}]" if isinstance(step, int) else (f".{step}" if text else step)
    return text or subject


def said(
    error: ErrorDetails, subject: str, missing: Callable[[str], str] = "{} is missing".format
) -> str:
    """The sentence for one error of a value called `subject` at its top."""
    where = path(error["loc"], subject)
    kind = error["type"]
    if kind == SENTENCE:
        return error["msg"]
    if kind == "missing":
        return missing(where)
    if kind in _CONTAINERS:
        return f"{where} must be {_CONTAINERS[kind]}, not {short(error['input'])}"
    return f"{where} {error['msg']}"


def checked_config(model: type[M], config: object, kind: str, required: Callable[[str], str]) -> M:
    """An agent kind's config as its model, defaults filled in; raises InvalidConfig naming
    the unknown keys, or the first key at fault (`required` says what a missing key is)."""
    if not isinstance(config, Mapping):
        raise InvalidConfig(
            f"{'an' if kind[0] in 'aeiou' else 'a'} {kind} config must be an object"
        )
    try:
        return model.model_validate(dict(config))
    except ValidationError as error:
        errors = error.errors(include_url=False)
    unknown = sorted(str(item["loc"][0]) for item in errors if item["type"] == "extra_forbidden")
    if unknown:
        keys = ", ".join(model.model_fields)
        raise InvalidConfig(f"{kind} takes only {keys}, not {', '.join(unknown)}")
    raise InvalidConfig(said(errors[0], "the config", required))
