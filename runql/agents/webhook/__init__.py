"""The webhook agent: POSTs a run and its conversation to a URL and reads the reply.

- `wire`: the JSON a webhook receives and answers with (the contract receivers implement);
- `config`: what an agent's config holds and how it is checked;
- `client`: the HTTP side (one client per agent, retries, timeouts, the egress transport);
- `kind`: the `webhook` AgentKind and its agents;
- `checks`: how a refused config or reply is told.

The URL's addresses must pass the egress policy (`runql.agents.egress`) when the config is
saved and again on every connection.
"""

from runql.agents.webhook.config import WebhookConfig
from runql.agents.webhook.kind import WebhookAgent, WebhookKind
from runql.agents.webhook.wire import parse_reply, request_body

__all__ = ["WebhookAgent", "WebhookConfig", "WebhookKind", "parse_reply", "request_body"]
