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
import ipaddress
import socket
import ssl
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, TypeAlias

import httpcore
import httpx

from runql.agents.protocol import InvalidConfig
from runql.settings import Network, Settings

Address: TypeAlias = ipaddress.IPv4Address | ipaddress.IPv6Address

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
        try:
            addresses = await self._policy.resolve(host, port)
        except OSError as exc:
            raise httpcore.ConnectError(f"{host} does not resolve ({exc})") from None
        failure: httpcore.ConnectError | httpcore.ConnectTimeout | None = None
        for address in addresses:
            try:
                return await self._backend.connect_tcp(
                    str(address), port, timeout, local_address, socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
        assert failure is not None
        raise failure

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


class _Pool(httpcore.AsyncConnectionPool):
    """httpcore's pool with its bookkeeping done in one pass over the connections and one over
    the requests. httpcore's, run twice a request, scans every connection for every queued
    request, counts them all again for each idle one, and polls each idle socket to see
    whether its server closed it: with hundreds of runs in flight, most of a worker's CPU.
    Here an idle socket is polled when it is about to be reused, and all of them once per
    SWEEP_SECONDS (to close those that expired or that their server closed).

    It also counts only idle connections against `max_keepalive_connections` (httpcore counts
    them all, so beyond that many connections every idle one is closed and the next request
    connects, and is checked, anew), hands an idle connection to one request at a time, and
    never closes one it has handed to a request that has yet to send (httpcore may, when the
    event loop is late, and the request then fails reading its reply).
    A connection is reused only for its own origin, so only for the address it was checked
    for; each new one is checked when it connects (_CheckedBackend)."""

    _swept_at = 0.0  # time.monotonic() of the last sweep

    def _assign_requests_to_connections(self) -> list[httpcore.AsyncConnectionInterface]:
        closing: list[httpcore.AsyncConnectionInterface] = []
        now = time.monotonic()
        sweep = now >= self._swept_at + SWEEP_SECONDS
        if sweep:
            self._swept_at = now
        taken = {id(r.connection) for r in self._requests if r.connection is not None}
        kept: list[httpcore.AsyncConnectionInterface] = []
        free: list[httpcore.AsyncConnectionInterface] = []  # idle, and no request holds it
        idle = 0
        for connection in self._connections:
            if connection.is_closed():
                continue
            held = id(connection) in taken  # given to a request that has yet to start
            if connection.is_idle() and not held:
                idle += 1
                if idle > self._max_keepalive_connections or (sweep and connection.has_expired()):
                    closing.append(connection)
                    continue
            kept.append(connection)
            if not held and connection.is_available():
                free.append(connection)
        self._connections = kept
        for pool_request in self._requests:
            if pool_request.is_queued() and not self._assign(pool_request, free, closing):
                break  # the rest wait for a connection to come free
        return closing

    def _assign(
        self,
        pool_request: httpcore._async.connection_pool.AsyncPoolRequest,
        free: list[httpcore.AsyncConnectionInterface],
        closing: list[httpcore.AsyncConnectionInterface],
    ) -> bool:
        """Gives the request a free connection to its origin that has not expired, or a new
        one if there is room (closing an idle one to another origin to make it); False when
        every connection is busy."""
        origin = pool_request.request.url.origin
        while (
            connection := next((c for c in free if c.can_handle_request(origin)), None)
        ) is not None:
            free.remove(connection)
            if not connection.has_expired():
                pool_request.assign_to_connection(connection)
                return True
            self._connections.remove(connection)
            closing.append(connection)
        if len(self._connections) >= self._max_connections:
            if not free:
                return False
            surplus = free.pop(0)
            self._connections.remove(surplus)
            closing.append(surplus)
        connection = self.create_connection(origin)
        self._connections.append(connection)
        pool_request.assign_to_connection(connection)
        return True
