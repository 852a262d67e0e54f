"""kopf handlers: one small function per event, translating our errors into kopf's at one point.

    create / update / resume ─► Reconciler.apply ─► status (Ready, Progressing, Degraded) via kopf's patch
    delete ─────────────────► Reconciler.cleanup (children + route entry), then kopf drops the finalizer
    daemon (per QuoteModel) ─► every `retry.status_interval_s`: children's readiness ─► status + route

Errors: `InvalidSpec` becomes `kopf.PermanentError` (nothing to retry until the spec changes); every
other `QuoteOperatorError` becomes `kopf.TemporaryError` with exponential backoff. Both first write the
Degraded condition and post a Warning event, so a failure is visible on the object (`kubectl describe`)
and the operator never crash-loops.
Run with `python -m quote_operator`, or `kopf run -m quote_operator.handlers --all-namespaces`.
"""

from __future__ import annotations

import asyncio
import copy
import logging
from collections.abc import Mapping
from typing import Any

import kopf

from .errors import Conflict, InvalidSpec, QuoteOperatorError
from .kube import QUOTE_MODEL, Kube, bearer_token, load_configuration
from .reconcile import Reconciler, error_status, owner_of
from .settings import OperatorSettings

GROUP, VERSION, PLURAL = QUOTE_MODEL.group, QUOTE_MODEL.version, QUOTE_MODEL.plural
FINALIZER = "quote.dev/cleanup"


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    """Read our settings once; keep kopf's bookkeeping under quote.dev annotations, not in status."""
    config = OperatorSettings()
    settings.peering.standalone = True  # one replica (Recreate): no peering objects, no RBAC for them
    settings.scanning.disabled = True  # serve the CRDs present at start-up: no cluster-wide CRD watch
    settings.persistence.finalizer = FINALIZER
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix="quote.dev")
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix="quote.dev", key="last-handled-configuration"
    )
    settings.posting.level = logging.WARNING  # Kubernetes events for problems only (posted by _reconcile)
    kube = Kube.from_environment(field_manager=config.field_manager)
    memo.settings, memo.kube, memo.reconciler = config, kube, Reconciler(kube, config)


@kopf.on.login()
def login(**_: Any) -> kopf.ConnectionInfo:
    """kopf's watches use the very credentials our client uses (kopf's own loader caches $KUBECONFIG at import)."""
    config = load_configuration()
    return kopf.ConnectionInfo(
        server=config.host,
        ca_path=config.ssl_ca_cert,
        insecure=not config.verify_ssl,
        token=bearer_token(config),
        certificate_path=config.cert_file,
        private_key_path=config.key_file,
    )


@kopf.on.create(GROUP, VERSION, PLURAL)
def created(body: kopf.Body, patch: kopf.Patch, memo: kopf.Memo, retry: int, **_: Any) -> None:
    _reconcile(body, patch, memo, retry)


@kopf.on.update(GROUP, VERSION, PLURAL)
def updated(body: kopf.Body, patch: kopf.Patch, memo: kopf.Memo, retry: int, **_: Any) -> None:
    _reconcile(body, patch, memo, retry)


@kopf.on.resume(GROUP, VERSION, PLURAL)
def resumed(body: kopf.Body, patch: kopf.Patch, memo: kopf.Memo, retry: int, **_: Any) -> None:
    _reconcile(body, patch, memo, retry)


@kopf.on.delete(GROUP, VERSION, PLURAL)
def deleted(body: kopf.Body, memo: kopf.Memo, retry: int, **_: Any) -> None:
    owner = owner_of(body)
    try:
        memo.reconciler.cleanup(owner.namespace, owner.name, owner.uid)
    except QuoteOperatorError as exc:
        raise kopf.TemporaryError(f"cleanup failed: {exc}", delay=memo.settings.backoff(retry)) from exc


@kopf.daemon(GROUP, VERSION, PLURAL, cancellation_timeout=5.0)
async def watch_readiness(body: kopf.Body, memo: kopf.Memo, stopped: kopf.DaemonStopped, logger: Any, **_: Any) -> None:
    """Poll the children's status (no watch on them: fewer RBAC verbs, works for any runtime)."""
    while not stopped:
        snapshot = copy.deepcopy(dict(body))  # the live body changes under us between events
        await asyncio.to_thread(_refresh, snapshot, memo, logger)
        await stopped.wait(memo.settings.retry.status_interval_s)


def _reconcile(body: kopf.Body, patch: kopf.Patch, memo: kopf.Memo, retry: int) -> None:
    reconciler: Reconciler = memo.reconciler
    try:
        patch.status.update(reconciler.apply(body))
    except InvalidSpec as exc:
        patch.status.update(error_status(body, exc, retrying=False))
        kopf.warn(body, reason=exc.reason, message=str(exc))  # shows in `kubectl describe qm`
        raise kopf.PermanentError(str(exc)) from exc
    except QuoteOperatorError as exc:
        patch.status.update(error_status(body, exc, retrying=True))
        kopf.warn(body, reason=exc.reason, message=f"{exc} (retry {retry + 1})")
        raise kopf.TemporaryError(str(exc), delay=memo.settings.backoff(retry)) from exc


def _refresh(body: dict[str, Any], memo: kopf.Memo, logger: logging.Logger) -> None:
    reconciler: Reconciler = memo.reconciler
    kube: Kube = memo.kube
    meta = body["metadata"]
    try:
        result = reconciler.refresh(body)
        if result is None or _same(body.get("status") or {}, result[0]):
            return
        reconciler.publish_readiness(body, result[1])
        guarded = {"metadata": {"resourceVersion": meta["resourceVersion"]}, "status": result[0]}
        kube.merge_patch(QUOTE_MODEL, meta["namespace"], meta["name"], guarded, subresource="status")
    except Conflict:
        logger.debug("status changed while reading readiness; next round")
    except QuoteOperatorError as exc:
        logger.warning("readiness check failed, retrying in %ss: %s", memo.settings.retry.status_interval_s, exc)


def _same(current: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    return all(current.get(key) == value for key, value in new.items())
