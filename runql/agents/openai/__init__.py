"""The `openai` agent: a Chat Completions agent that streams, on the official SDK, for OpenAI
and the servers that speak its API (vLLM, Ollama, LM Studio, llama.cpp server).

- `config`: what an agent's config holds and how it is checked;
- `chunks`: reading the streamed chunks, and the error codes a run ends with;
- `kind`: the `openai` AgentKind;
- `agent`: its agents, on the SDK (imported when the first agent is made).

The base_url's addresses must pass the egress policy (`runql.agents.egress`) when the config
is saved and again on every connection.
"""

from runql.agents.openai.config import OpenAIConfig
from runql.agents.openai.kind import OpenAIKind

__all__ = ["OpenAIConfig", "OpenAIKind"]
