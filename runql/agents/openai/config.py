"""An `openai` agent's config: which OpenAI-compatible server and model, where its API key is
(the NAME of an environment variable: the key itself is never in a config, so never stored or
shown), and how a run is prompted, timed and priced. The model holds the rules; `check_config`
turns a refusal into the InvalidConfig an agent's owner reads."""

import re
from collections.abc import Mapping
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictFloat,
    StrictInt,
    StrictStr,
)

from runql.agents.webhook.checks import checked_config, must_be
from runql.agents.webhook.config import Retries, Seconds, Url

DEFAULT_TIMEOUT_S = 60
DEFAULT_RETRIES = 2
MAX_MODEL = 200
MAX_SYSTEM_PROMPT = 100_000
MAX_TOKENS = 1_000_000
MAX_PRICE = 1_000.0

_VARIABLE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")


def _without_credentials(value: str) -> str:
    parts = urlsplit(value)
    if parts.username is not None or parts.password is not None:
        raise ValueError("holds credentials")
    return value


def _variable(value: str) -> str:
    if not _VARIABLE.match(value):
        raise ValueError("not a variable name")
    return value


BaseUrl = Annotated[
    Url,
    AfterValidator(_without_credentials),
    must_be(
        "an absolute http or https URL with a host and no credentials (the key comes from "
        "api_key_env), such as https://api.openai.com/v1",
        echo=False,
    ),
]
Model = Annotated[StrictStr, Field(min_length=1, max_length=MAX_MODEL), must_be("a model's name")]
Variable = Annotated[
    StrictStr,
    AfterValidator(_variable),
    must_be("the name of an environment variable (letters, digits and _), such as OPENAI_API_KEY"),
]
Prompt = Annotated[
    StrictStr | None,
    Field(max_length=MAX_SYSTEM_PROMPT),
    must_be(f"a string of at most {MAX_SYSTEM_PROMPT} characters, or null", echo=False),
]
Temperature = Annotated[
    StrictInt | Annotated[StrictFloat, Field(allow_inf_nan=False)] | None,
    Field(ge=0, le=2),
    must_be("a number from 0 to 2, or null"),
]
MaxTokens = Annotated[
    StrictInt | None, Field(ge=1, le=MAX_TOKENS), must_be(f"a whole number from 1 to {MAX_TOKENS}")
]
Price = Annotated[
    StrictInt | Annotated[StrictFloat, Field(allow_inf_nan=False)] | None,
    Field(ge=0, le=MAX_PRICE),
    must_be(f"a number from 0 to {MAX_PRICE:g}, or null"),
]
Unit = Annotated[
    StrictStr, Field(min_length=1, max_length=20), must_be("a unit of 1 to 20 characters")
]


class OpenAIConfig(BaseModel):
    """What an `openai` agent's `config` holds (`createAgent`, `updateAgent`)."""

    model_config = ConfigDict(extra="forbid", frozen=True, title="OpenAI config")

    base_url: BaseUrl = Field(
        description=(
            "The API's base URL, up to and including /v1 (OpenAI, vLLM, Ollama, LM Studio, "
            "llama.cpp server); its host must pass the egress policy."
        )
    )
    model: Model = Field(description="The model's name, as the server knows it.")
    api_key_env: Variable = Field(
        description=(
            "The name of the environment variable that holds the API key, read by the process "
            "that runs the agent at each request. Unset or empty, the run ends in ERROR "
            "missing_api_key."
        )
    )
    system_prompt: Prompt = Field(None, description="A system message before the thread.")
    temperature: Temperature = Field(None, description="Sampling temperature; null: the server's.")
    max_tokens: MaxTokens = Field(None, description="The answer's token cap; null: the server's.")
    cost_per_1k_tokens: Price = Field(
        None,
        description=(
            "The price of 1,000 tokens (prompt and answer) in cost_unit; null reports the "
            "run's cost as its total tokens, in the unit 'tokens'."
        ),
    )
    cost_unit: Unit = Field("usd", description="The unit of cost_per_1k_tokens.")
    timeout_s: Seconds = Field(
        DEFAULT_TIMEOUT_S,
        description="Seconds each wait may take: connecting, the first chunk, between chunks.",
    )
    retries: Retries = Field(
        DEFAULT_RETRIES,
        description=(
            "How often a 408, 409, 429, 5xx, timeout or failed connection is retried; only "
            "before the answer starts streaming."
        ),
    )


def _required(where: str) -> str:
    return f"{where} is required"


def check_config(config: Mapping[str, Any]) -> OpenAIConfig:
    """The config as an OpenAIConfig, defaults filled in; raises InvalidConfig."""
    return checked_config(OpenAIConfig, config, "openai", _required)
