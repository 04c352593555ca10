"""The rate limit: a token bucket per API key, in this process.

Each key may make `burst` requests at once and `rate` a second after that; over it, 429 with
`Retry-After`. Buckets live in the process (one per worker with several workers); the edge
(runql/edge.py) takes a token for each request that its key admitted.
"""

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from starlette.types import Receive, Scope, Send

from runql.security.errors import RATE_LIMITED
from runql.security.media import negotiate
from runql.security.responses import error_response


@dataclass
class TokenBucket:
    rate: float
    burst: int
    tokens: float
    updated: float

    def take(self, now: float) -> float:
        """Take a token: 0.0 if there was one, else the seconds until there is."""
        self.tokens = min(float(self.burst), self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) / self.rate


class RateLimits:
    def __init__(
        self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate = rate
        self.burst = burst
        self.clock = clock
        self.buckets: dict[str, TokenBucket] = {}

    def wait(self, key: str) -> float:
        """0.0 if `key` may go ahead now (a token is taken), else the seconds to wait."""
        now = self.clock()
        bucket = self.buckets.get(key)
        if bucket is None:
            bucket = self.buckets[key] = TokenBucket(self.rate, self.burst, self.burst, now)
        return bucket.take(now)


def retry_after(wait: float) -> str:
    return str(max(1, math.ceil(wait)))


async def refuse_rate(
    scope: Scope, receive: Receive, send: Send, wait: float, accept: str | None
) -> None:
    """429 with `Retry-After`, in the route's error shape."""
    seconds = retry_after(wait)
    response = error_response(
        scope["path"],
        429,
        RATE_LIMITED,
        f"too many requests with this API key: retry after {seconds} s",
        media_type=negotiate(accept),
        headers={"Retry-After": seconds},
    )
    await response(scope, receive, send)
