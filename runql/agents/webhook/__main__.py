"""`python -m runql.agents.webhook`: the JSON schemas of the webhook's wire format, for those
who implement a receiver."""

import json

from runql.agents.webhook.wire import schemas

print(json.dumps(schemas(), indent=2))
