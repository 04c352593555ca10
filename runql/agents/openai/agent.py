"""An `openai` agent: it holds one `AsyncOpenAI` client (its connections bounded
and checked by the egress policy, closed by `aclose`) and streams a Chat Completion per run.
The client's transport is runql.agents.http1's, which reads a streamed answer cheaply.

Retries are the SDK's (`max_retries` = the config's `retries`): it retries the request, which
is before the answer's first chunk; once a chunk has arrived nothing is retried, since the
text streamed so far is the run's. The SDK makes the request (auth, retries, the errors of
its status); the answer's events are read from its raw streaming response and parsed with
orjson (runql.agents.openai.chunks), not built into the SDK's chunk models.
"""

import os
from collections.abc import AsyncIterator
from typing import Any, cast

import httpx
import openai
import orjson
from openai.types.chat import ChatCompletionMessageParam

from runql.agents.egress import EgressPolicy, EgressRefused
from runql.agents.http1 import Http1Transport
from runql.agents.openai.chunks import Reading, failure, stream_data
from runql.agents.openai.config import OpenAIConfig
from runql.agents.protocol import (
    AgentError,
    AgentReply,
    AgentRequest,
    Cost,
    MessageStarted,
    StreamEvent,
    TextDelta,
    Turn,
    collect,
)
from runql.agents.webhook.client import POOL_LIMITS, ssl_context
from runql.enums import ActorType

CONNECT_TIMEOUT_S = 10.0

_ROLES = {ActorType.USER: "user", ActorType.AGENT: "assistant", ActorType.SYSTEM: "system"}


def _message(turn: Turn) -> ChatCompletionMessageParam:
    role = _ROLES[turn.actor_type]
    if role == "assistant":
        return {"role": "assistant", "content": turn.text}
    if role == "system":
        return {"role": "system", "content": turn.text}
    return {"role": "user", "content": turn.text}


def chat_messages(config: OpenAIConfig, request: AgentRequest) -> list[ChatCompletionMessageParam]:
    """The chat a run sends: the system prompt, the thread's history, then its message."""
    messages: list[ChatCompletionMessageParam] = []
    if config.system_prompt:
        messages.append({"role": "system", "content": config.system_prompt})
    messages.extend(_message(turn) for turn in (*request.history, request.message))
    return messages


class OpenAIAgent:
    """One `openai` agent's config and SDK client; its runs share the client's connections
    until `aclose`."""

    def __init__(self, config: OpenAIConfig, egress: EgressPolicy = EgressPolicy()) -> None:
        self.config = config
        timeout = httpx.Timeout(config.timeout_s, connect=min(CONNECT_TIMEOUT_S, config.timeout_s))
        self._http = httpx.AsyncClient(
            timeout=timeout,
            transport=Http1Transport(egress, ssl_context(), POOL_LIMITS),
            follow_redirects=False,
        )
        self._client = openai.AsyncOpenAI(
            api_key=self._api_key,
            base_url=config.base_url,
            max_retries=config.retries,
            # The SDK (3.x) is typed for its httpx2 but takes an httpx client too (it checks
            # for either); httpx's is the transport interface runql.agents.http1 implements.
            http_client=cast(Any, self._http),
        )

    def __repr__(self) -> str:
        return f"OpenAIAgent(model={self.config.model!r})"

    async def _api_key(self) -> str:
        """The key, read from the environment at each request (so a rotated key is used at
        once); never kept in the config."""
        name = self.config.api_key_env
        key = os.environ.get(name, "")
        if not key:
            raise AgentError(
                "missing_api_key",
                f"The environment variable {name} (the agent's api_key_env) is not set.",
                {"api_key_env": name},
            )
        return key

    def _options(self) -> dict[str, Any]:
        options: dict[str, Any] = {}
        if self.config.temperature is not None:
            options["temperature"] = self.config.temperature
        if self.config.max_tokens is not None:
            options["max_tokens"] = self.config.max_tokens
        return options

    def _cost(self, total_tokens: int) -> Cost:
        price = self.config.cost_per_1k_tokens
        if price is None:
            return Cost(float(total_tokens), "tokens")
        return Cost(total_tokens / 1000 * price, self.config.cost_unit)

    async def stream(self, request: AgentRequest) -> AsyncIterator[StreamEvent]:
        """The answer as it streams: its text deltas, then its tool calls and its cost. Raises
        AgentError (see `runql.agents.openai.chunks`). Closing the iterator closes the HTTP
        stream."""
        reading = Reading()
        started = False
        try:
            async with self._client.chat.completions.with_streaming_response.create(
                model=self.config.model,
                messages=chat_messages(self.config, request),
                stream=True,
                stream_options={"include_usage": True},
                **self._options(),
            ) as response:
                async for batch in stream_data(response):
                    # the chunks a piece of the body completed, as one delta: the draft would
                    # join them anyway, and each event costs the run's pump a step
                    text = "".join([reading.text(orjson.loads(data)) for data in batch])
                    if text:
                        if not started:
                            started = True
                            yield MessageStarted()
                        yield TextDelta(text)
        except (openai.OpenAIError, EgressRefused, ValueError) as error:
            raise failure(error, started, self.config.timeout_s) from None
        if reading.finished is None:
            raise AgentError(
                "stream_interrupted", "The stream ended before the model finished its answer."
            )
        for call in reading.tool_calls():
            yield call
        if reading.total_tokens is not None:
            yield self._cost(reading.total_tokens)

    async def run(self, request: AgentRequest) -> AgentReply:
        return await collect(self.stream(request))

    async def aclose(self) -> None:
        await self._client.close()
