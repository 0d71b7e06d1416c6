"""Where an alert came from, beyond ``host``: the cluster, node, namespace, pod and container.

The first question on a shared channel. tailhook's own place comes from the
config (``identity:``) or, in Kubernetes, from the Downward API environment
the manifests set (``NODE_NAME``, ``POD_NAMESPACE``, ``POD_NAME``; and
``TAILHOOK_CLUSTER``, ``TAILHOOK_CONTAINER``). A line read from a container's
log on a node (a DaemonSet reading ``/var/log/pods`` or ``/var/log/containers``)
came from that container: its path names the namespace, pod and container,
which then stand in place of tailhook's own.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from types import MappingProxyType

__all__ = ["ENVIRONMENT", "FIELDS", "from_environment", "origin_of", "pod_of_path"]

FIELDS = ("cluster", "node", "namespace", "pod", "container")
"""The names templates, routes and embeds know them by, in the order an embed shows them."""
ENVIRONMENT = {
    "cluster": "TAILHOOK_CLUSTER",
    "node": "NODE_NAME",
    "namespace": "POD_NAMESPACE",
    "pod": "POD_NAME",
    "container": "TAILHOOK_CONTAINER",
}
"""Each field's environment variable: the Downward API's names where Kubernetes has one."""

_PODS = re.compile(r"/var/log/pods/(?P<namespace>[^_/]+)_(?P<pod>[^_/]+)_[^/]+/(?P<container>[^/]+)/[^/]+$")
"""``/var/log/pods/<namespace>_<pod>_<uid>/<container>/<restart>.log`` (and its rotated files)."""
_CONTAINERS = re.compile(
    r"/var/log/containers/(?P<pod>[^_/]+)_(?P<namespace>[^_/]+)_(?P<container>[^/]+)-[0-9a-f]{64}\.log$"
)
"""``/var/log/containers/<pod>_<namespace>_<container>-<container id>.log`` (links into the above)."""


def from_environment(environ: Mapping[str, str] = os.environ) -> dict[str, str]:
    """The fields the environment gives, those that are set and not empty."""
    return {name: value for name, variable in ENVIRONMENT.items() if (value := environ.get(variable, "").strip())}


def pod_of_path(path: str) -> Mapping[str, str] | None:
    """The namespace, pod and container a container log's *path* names; ``None`` for any other path."""
    found = _PODS.search(path) or _CONTAINERS.search(path)
    if found is None:
        return None
    return MappingProxyType({name: found.group(name) for name in ("namespace", "pod", "container")})


def origin_of(path: str, identity: Mapping[str, str]) -> Mapping[str, str]:
    """Where a line read from *path* came from: tailhook's *identity*, with what a container log's
    path names in place of its namespace, pod and container."""
    pod = pod_of_path(path) if path else None
    if pod is None:
        return identity
    return MappingProxyType({**identity, **pod})
