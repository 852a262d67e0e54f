"""The parts of one gateway, built once from settings and started/stopped with the app.

    GatewaySettings ─► Gateway.build(settings, route source)
        keys      KeyAuthenticator ─► RegistryLink (introspection)
        limiter   MemoryLimiter, or RedisLimiter when redis_url is set
        table     RouteTable, kept current by a RouteRefresher
        usage     UsageRecorder ─► RegistryLink (batches)
        proxy     ProxyApp over a ReplicaSet (standalone gateway only; in-process there is no hop)

The edge (edge.py) and the standalone app (app.py) only use these; nothing here speaks ASGI.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from quote_serving.gateway.health import HealthChecker
from quote_serving.gateway.keys import KeyAuthenticator
from quote_serving.gateway.limits import Limiter, Limits, MemoryLimiter
from quote_serving.gateway.proxy import ProxyApp
from quote_serving.gateway.registry_link import RegistryLink
from quote_serving.gateway.replicas import ReplicaSet
from quote_serving.gateway.route_sources import OperatorRoutes, RouteRefresher, RouteSource, StaticRoutes
from quote_serving.gateway.routes import RouteTable
from quote_serving.gateway.settings import GatewaySettings
from quote_serving.gateway.usage import UsageRecorder

__all__ = ["Gateway", "GatewayConfigError", "route_source"]

logger = logging.getLogger(__name__)


class GatewayConfigError(ValueError):
    """The settings cannot make a working gateway (the message says which one to set)."""


def route_source(settings: GatewaySettings) -> RouteSource:
    if settings.routes is not None:
        return StaticRoutes(settings.routes)
    if settings.routes_dir is not None:
        return OperatorRoutes(settings.routes_dir)
    raise GatewayConfigError("no routes: pass --routes FILE (or --routes-dir for the operator's ConfigMap)")


@dataclass
class Gateway:
    settings: GatewaySettings
    keys: KeyAuthenticator
    limiter: Limiter
    table: RouteTable
    refresher: RouteRefresher
    registry: RegistryLink
    usage: UsageRecorder
    proxy: ProxyApp | None = None
    health: HealthChecker | None = None
    on_refusal: Callable[[str, str], None] | None = None  # (tenant, limit) for the refusals metric

    @property
    def defaults(self) -> Limits:
        s = self.settings
        return Limits(s.default_requests_per_minute, s.default_tokens_per_minute, s.default_max_concurrent)

    @classmethod
    def build(cls, settings: GatewaySettings, source: RouteSource, *, proxy: bool) -> Gateway:
        """Every part, with the route table loaded once now (a bad route file fails start-up)."""
        if not settings.registry_url or settings.registry_api_key is None:
            raise GatewayConfigError(
                "the gateway checks keys with the registry: set --registry-url (QUOTE_REGISTRY_URL) and a "
                "service key in QUOTE_REGISTRY_API_KEY"
            )
        registry = RegistryLink(settings.registry_url, settings.registry_api_key.get_secret_value())
        table = RouteTable()
        refresher = RouteRefresher(source, table, settings.routes_refresh_s)
        refresher.refresh()
        return cls(
            settings=settings,
            keys=KeyAuthenticator(
                registry.introspect,
                ttl_s=settings.auth_ttl_s,
                stale_s=settings.auth_stale_s,
                max_entries=settings.auth_cache_size,
            ),
            limiter=_limiter(settings),
            table=table,
            refresher=refresher,
            registry=registry,
            usage=UsageRecorder(
                registry.record_usage,
                flush_s=settings.usage_flush_s,
                batch=settings.usage_batch,
                max_pending=settings.usage_buffer,
            ),
            proxy=(forwarder := _proxy(settings) if proxy else None),
            health=None
            if forwarder is None
            else HealthChecker(
                table, forwarder.replicas, interval_s=settings.health_interval_s, timeout_s=settings.health_timeout_s
            ),
        )

    async def start(self) -> None:
        if self.proxy is not None:
            await self.proxy.start()
        if self.health is not None:
            self.health.start()
        self.refresher.start()
        self.usage.start()

    async def stop(self) -> None:
        await self.refresher.stop()
        if self.health is not None:
            await self.health.stop()
        await self.usage.close()
        if self.proxy is not None:
            await self.proxy.close()
        await self.limiter.close()
        await self.registry.close()


def _limiter(settings: GatewaySettings) -> Limiter:
    if settings.redis_url is None:
        logger.info("rate limits are counted in this process (set QUOTE_GATEWAY_REDIS_URL to share them)")
        return MemoryLimiter()
    from quote_serving.gateway.redis_limits import RedisLimiter

    return RedisLimiter(settings.redis_url, lease_s=settings.concurrency_lease_s)


def _proxy(settings: GatewaySettings) -> ProxyApp:
    if settings.secret is None:
        logger.warning("no QUOTE_GATEWAY_SECRET: replicas cannot tell which tenant calls (development only)")
    return ProxyApp(
        ReplicaSet(eject_s=settings.eject_s),
        secret=settings.secret.get_secret_value().encode() if settings.secret else None,
        connect_timeout_s=settings.connect_timeout_s,
        read_timeout_s=settings.read_timeout_s,
        request_timeout_s=settings.request_timeout_s,
        max_attempts=settings.max_attempts,
        outlier_5xx=settings.outlier_5xx,
    )
