"""Where agents may connect: no internal addresses unless the operator allows them.

An agent that calls out (a webhook, and any kind whose config names a URL) could otherwise be
aimed at loopback, the cloud metadata address or a private network, and its run outcomes used
to probe them. `EgressPolicy` refuses every address that is not globally routable (loopback,
private, link-local, multicast, unspecified, carrier-grade NAT, reserved and other special
ranges, IPv6 forms that embed such an IPv4 address) unless it lies in a network the operator
allows (`RUNQL_EGRESS_ALLOWED_CIDRS`; development allows loopback by default).

The check runs twice: when a config is saved (`check_url`: the host's current addresses) and
when a connection is made (`transport`: the host is resolved here, every address checked, and
the connection goes to a checked address), so a name that later resolves elsewhere (DNS
rebinding) is refused too. TLS and the Host header keep the name: httpcore takes both from the
URL, not from the address connected to.
"""

import asyncio
import collections
import ipaddress
import socket
import ssl
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeAlias, TypeVar

import httpcore
import httpx
from httpcore._async.connection_pool import AsyncPoolRequest
from httpcore._async.http11 import AsyncHTTP11Connection, HTTPConnectionState

from runql.agents.protocol import InvalidConfig
from runql.settings import Network, Settings

Address: TypeAlias = ipaddress.IPv4Address | ipaddress.IPv6Address
_Opened = TypeVar("_Opened")

# How long saving a config waits for DNS; a name that does not resolve in time is accepted
# there and checked again when the agent connects.
RESOLVE_TIMEOUT_S = 5.0

# How often an agent's connection pool closes the idle connections that expired or that their
# server closed (each is also checked when it is about to be reused).
SWEEP_SECONDS = 1.0

_CARRIER_GRADE_NAT = ipaddress.ip_network("100.64.0.0/10")
_PRIVATE = tuple(
    ipaddress.ip_network(cidr)
    for cidr in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7")
)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")


class EgressRefused(Exception):
    """An address the policy refuses; the message names the address and its class."""


def _embedded_ipv4(address: Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for (mapped, compatible, 6to4, Teredo, NAT64)."""
    if isinstance(address, ipaddress.IPv4Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    if address in _NAT64 or (address in _IPV4_COMPATIBLE and int(address) > 1):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def _own_class(address: Address) -> str | None:
    if address.is_unspecified:
        return "unspecified"
    if address.is_loopback:
        return "loopback"
    if address.is_link_local:
        return "link-local"
    if address.is_multicast:
        return "multicast"
    if address in _CARRIER_GRADE_NAT:
        return "carrier-grade NAT"
    if any(address in network for network in _PRIVATE):
        return "private"
    if address.is_reserved:
        return "reserved"
    if not address.is_global:
        return "special-purpose"
    return None


def address_class(address: Address) -> str | None:
    """The class that makes `address` internal ("loopback", "private", ...), None if global."""
    embedded = _embedded_ipv4(address)
    if embedded is not None:
        return _own_class(embedded)
    return _own_class(address)


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def _literal(host: str) -> Address | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


@dataclass(frozen=True)
class EgressPolicy:
    """Internal addresses are refused unless they lie in one of `allowed`."""

    allowed: tuple[Network, ...] = ()

    @classmethod
    def from_settings(cls, settings: Settings) -> "EgressPolicy":
        return cls(settings.egress_allowed)

    def _is_allowed(self, address: Address) -> bool:
        candidates = [address]
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            candidates.append(embedded)
        return any(
            candidate in network
            for candidate in candidates
            for network in self.allowed
            if candidate.version == network.version
        )

    def check(self, host: str, address: Address) -> None:
        """Raises EgressRefused when `host` (which resolved to `address`) may not be reached."""
        kind = address_class(address)
        if kind is None or self._is_allowed(address):
            return
        where = f"{address} is" if host == str(address) else f"{host} resolves to {address},"
        raise EgressRefused(
            f"{where} {_article(kind)} {kind} address; runql does not connect to those "
            "unless RUNQL_EGRESS_ALLOWED_CIDRS allows it"
        )

    async def resolve(self, host: str, port: int) -> list[Address]:
        """Every address of `host`, each checked; raises EgressRefused, or OSError from DNS."""
        literal = _literal(host)
        if literal is not None:
            addresses = [literal]
        else:
            infos = await asyncio.get_running_loop().getaddrinfo(
                host, port, type=socket.SOCK_STREAM
            )
            addresses = list(
                dict.fromkeys(
                    ipaddress.ip_address(str(info[4][0]).partition("%")[0]) for info in infos
                )
            )
        for address in addresses:
            self.check(host, address)
        return addresses

    async def connect(
        self,
        host: str,
        port: int,
        open_to: Callable[[str], Awaitable[_Opened]],
        failures: tuple[type[Exception], ...] = (OSError,),
    ) -> _Opened:
        """`open_to(address)` for each checked address of `host` in turn until one connects; a
        failure of the kind `failures` moves on to the next, the last one's raised. Raises
        EgressRefused, or OSError when the name does not resolve."""
        failure: Exception | None = None
        for address in await self.resolve(host, port):
            try:
                return await open_to(str(address))
            except failures as exc:
                failure = exc
        assert failure is not None
        raise failure

    async def check_config_url(self, url: str, key: str) -> None:
        """`check_url` for an agent's config: InvalidConfig naming the key, when refused."""
        try:
            await self.check_url(url)
        except EgressRefused as refused:
            raise InvalidConfig(f"{key}: {refused}") from None

    async def check_url(self, url: str) -> None:
        """Raises EgressRefused when `url`'s host resolves to an address that is refused. A host
        that does not resolve (now) passes: DNS may be down, and connecting checks it again."""
        parsed = httpx.URL(url)
        port = parsed.port or (443 if parsed.scheme == "https" else 80)
        try:
            async with asyncio.timeout(RESOLVE_TIMEOUT_S):
                await self.resolve(parsed.host, port)
        except (OSError, TimeoutError):
            return

    def transport(
        self, ssl_context: ssl.SSLContext, limits: httpx.Limits
    ) -> httpx.AsyncHTTPTransport:
        """An httpx transport that connects only to addresses this policy allows, its
        connection pool bounded by `limits`."""
        return _CheckedTransport(ssl_context, _CheckedBackend(self), limits)


class _CheckedBackend(httpcore.AsyncNetworkBackend):
    """Resolves the host itself, checks every address, and connects to a checked one."""

    def __init__(self, policy: EgressPolicy) -> None:
        self._policy = policy
        self._backend = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        async def open_to(address: str) -> httpcore.AsyncNetworkStream:
            return await self._backend.connect_tcp(
                address, port, timeout, local_address, socket_options
            )

        try:
            return await self._policy.connect(
                host, port, open_to, (httpcore.ConnectError, httpcore.ConnectTimeout)
            )
        except OSError as exc:
            raise httpcore.ConnectError(f"{host} does not resolve ({exc})") from None

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise EgressRefused("agents connect over TCP only, not to unix sockets")

    async def sleep(self, seconds: float) -> None:
        await self._backend.sleep(seconds)


class _CheckedTransport(httpx.AsyncHTTPTransport):
    """httpx's transport over a connection pool that uses `backend`. httpx takes no network
    backend, so the pool it makes is replaced by one made the same way with the backend."""

    def __init__(
        self,
        ssl_context: ssl.SSLContext,
        backend: httpcore.AsyncNetworkBackend,
        limits: httpx.Limits,
    ) -> None:
        super().__init__(verify=ssl_context)
        self._pool = _Pool(
            ssl_context=ssl_context,
            network_backend=backend,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
        )


_IDLE, _CLOSED, _BUSY = "idle", "closed", "busy"


def _state(connection: httpcore.AsyncConnectionInterface) -> str:
    """Whether a pool's connection is idle (free for a request), closed, or busy (connecting,
    or serving a request). An HTTP/1.1 connection's state is read from its attribute: the
    pool reads every connection's twice a request, and the three calls through two objects
    it takes otherwise were a tenth of a worker's CPU with hundreds of runs in flight."""
    inner = getattr(connection, "_connection", None)
    if type(inner) is AsyncHTTP11Connection:
        state = inner._state
        if state is HTTPConnectionState.IDLE:
            return _IDLE
        return _CLOSED if state is HTTPConnectionState.CLOSED else _BUSY
    if connection.is_closed():
        return _CLOSED
    return _IDLE if connection.is_idle() and connection.is_available() else _BUSY


_Connection: TypeAlias = httpcore.AsyncConnectionInterface
_Request: TypeAlias = AsyncPoolRequest


class _Requests(list[_Request]):
    """The pool's requests (httpcore appends and removes them): tells the pool which arrived
    and which ended, so that it need not scan them all to find out."""

    def __init__(self, pool: "_Pool") -> None:
        super().__init__()
        self._pool = pool

    def append(self, request: _Request) -> None:
        super().append(request)
        self._pool._waiting.append(request)

    def remove(self, request: _Request) -> None:
        super().remove(request)
        self._pool._ended(request)


class _Pool(httpcore.AsyncConnectionPool):
    """httpcore's pool, its bookkeeping kept as requests arrive and end. httpcore's, run
    twice a request, scans every connection for every queued request, counts them all again
    for each idle one, and polls each idle socket to see whether its server closed it: with
    hundreds of runs in flight, most of a worker's CPU. Here the pool keeps the idle
    connections no request holds (`_free`), the requests waiting for one (`_waiting`) and
    those handed one they have yet to use (`_handed`); an idle socket is polled when it is
    about to be reused, and every connection looked at once per SWEEP_SECONDS (to close those
    that expired or that their server closed, and to drop the closed).

    It also counts only idle connections against `max_keepalive_connections` (httpcore counts
    them all, so beyond that many connections every idle one is closed and the next request
    connects, and is checked, anew), hands an idle connection to one request at a time, and
    never closes one it has handed to a request that has yet to send (httpcore may, when the
    event loop is late, and the request then fails reading its reply).
    A connection is reused only for its own origin, so only for the address it was checked
    for; each new one is checked when it connects (_CheckedBackend)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._waiting: collections.deque[_Request] = collections.deque()
        self._handed: list[_Request] = []
        self._free: dict[int, _Connection] = {}  # by id, oldest first
        self._released: list[_Connection] = []
        self._swept_at = time.monotonic()
        self._requests = _Requests(self)

    def _ended(self, request: _Request) -> None:
        """A request left the pool (answered, failed or cancelled): its connection may be
        free, and it waits for none any more."""
        if request.connection is not None:
            self._released.append(request.connection)
        elif request in self._waiting:
            self._waiting.remove(request)
        if request in self._handed:
            self._handed.remove(request)

    def _assign_requests_to_connections(self) -> list[_Connection]:
        closing: list[_Connection] = []
        self._recheck_handed()
        for connection in self._released:
            state = _state(connection)
            if state is _IDLE:
                self._free[id(connection)] = connection
            elif state is _CLOSED and connection in self._connections:
                self._connections.remove(connection)
        self._released.clear()
        now = time.monotonic()
        if now >= self._swept_at + SWEEP_SECONDS:
            self._swept_at = now
            self._sweep(closing)
        while self._waiting:
            request = self._waiting[0]
            if request.is_queued() and not self._assign(request, closing):
                break  # it and the rest wait for a connection to come free
            self._waiting.popleft()
            self._handed.append(request)
        return closing

    def _recheck_handed(self) -> None:
        """Requests handed an idle connection: those that have used it (it is busy now) are
        done with; one that found it taken after all (httpcore clears its connection and asks
        again) waits again, first."""
        still: list[_Request] = []
        for request in self._handed:
            if request.is_queued():
                self._waiting.appendleft(request)
            elif request.connection is not None and _state(request.connection) is _IDLE:
                still.append(request)
        self._handed = still

    def _sweep(self, closing: list[_Connection]) -> None:
        """Every connection looked at: the closed dropped; idle ones no request holds closed
        when they expired, their server closed them, or more are idle than may be kept."""
        held = {id(r.connection) for r in self._handed if r.connection is not None}
        kept: list[_Connection] = []
        self._free = {}
        idle = 0
        for connection in self._connections:
            state = _state(connection)
            if state is _CLOSED:
                continue
            if state is _IDLE and id(connection) not in held:
                idle += 1
                if idle > self._max_keepalive_connections or connection.has_expired():
                    closing.append(connection)
                    continue
                self._free[id(connection)] = connection
            kept.append(connection)
        self._connections = kept

    def _assign(self, pool_request: _Request, closing: list[_Connection]) -> bool:
        """Gives the request a free connection to its origin that has not expired, or a new
        one if there is room (closing an idle one to another origin to make it); False when
        every connection is busy."""
        origin = pool_request.request.url.origin
        while found := next(
            ((key, c) for key, c in self._free.items() if c.can_handle_request(origin)), None
        ):
            key, connection = found
            del self._free[key]
            state = _state(connection)
            if state is _IDLE and not connection.has_expired():
                pool_request.assign_to_connection(connection)
                return True
            if state is not _BUSY and connection in self._connections:
                self._connections.remove(connection)
                closing.append(connection)
        if len(self._connections) >= self._max_connections:
            surplus = next(iter(self._free.values()), None)
            if surplus is None:
                return False
            del self._free[id(surplus)]
            self._connections.remove(surplus)
            closing.append(surplus)
        connection = self.create_connection(origin)
        self._connections.append(connection)
        pool_request.assign_to_connection(connection)
        return True
