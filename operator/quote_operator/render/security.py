"""The hardening every serving pod the operator renders carries: tenants' mods are untrusted code.

Mods run in confined worker processes inside the serving container (quote_serving.runtime.mod_pool);
this is the layer around them, the same the chart's own pods get (values.yaml `securityContext`):
the image's non-root user, the container runtime's default seccomp profile, no privilege escalation,
no capabilities, and a read-only root filesystem with emptyDir volumes where the process writes:

    /tmp                              Ray's session dir, mod workers' scratch, torch's compile caches
    /home/quote/.cache/huggingface    HF_HOME (docker/Dockerfile): hub models download here

GPU pods (the CUDA image: SGLang, Triton and FlashInfer compile kernels into caches under $HOME) keep a
writable root filesystem until a GPU run shows every path they write.
"""

from __future__ import annotations

from typing import Any

__all__ = ["IMAGE_UID", "container_security_context", "pod_security_context", "writable_mounts", "writable_volumes"]

IMAGE_UID = 1000  # docker/Dockerfile: `useradd --uid 1000 quote`, `USER 1000`; it owns the baked models
_WRITABLE = {"tmp": "/tmp", "hf-cache": "/home/quote/.cache/huggingface"}


def pod_security_context() -> dict[str, Any]:
    """Every container of the pod (KubeRay's and KServe's injected ones too) runs as the image's user."""
    return {
        "runAsNonRoot": True,
        "runAsUser": IMAGE_UID,
        "runAsGroup": IMAGE_UID,
        "fsGroup": IMAGE_UID,  # emptyDirs and projected volumes writable by that user
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def container_security_context(*, read_only_root: bool = True) -> dict[str, Any]:
    return {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": read_only_root,
        "capabilities": {"drop": ["ALL"]},
    }


def writable_volumes() -> list[dict[str, Any]]:
    return [{"name": name, "emptyDir": {}} for name in _WRITABLE]


def writable_mounts() -> list[dict[str, Any]]:
    return [{"name": name, "mountPath": path} for name, path in _WRITABLE.items()]
