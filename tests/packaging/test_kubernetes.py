"""The Kubernetes manifests are valid for a current Kubernetes, and agree with the daemon and the
configs they carry: ports and probes, mounts, ConfigMap keys, the Secrets, security and resources;
and the Valkey of fleet mode (redis.yaml) with the configs whose fleet it serves.

Schema validation needs the kubernetes-validate package (in the dev extra); ``kubectl kustomize``
runs where kubectl is installed.
"""

from __future__ import annotations

import fnmatch
import ipaddress
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import pytest
import yaml

from tailhook._units import parse_size
from tailhook.http import HttpServer
from tailhook.metrics import Registry

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "packaging" / "kubernetes"
WORKLOADS = {"sidecar.yaml": ("Deployment", "example-app"), "daemonset.yaml": ("DaemonSet", "tailhook-node")}
"""The manifests of tailhook pods, and their workloads."""
REDIS = "redis.yaml"
PODS = {**WORKLOADS, REDIS: ("Deployment", "tailhook-redis")}
"""Every manifest of pods: tailhook's, and fleet mode's Valkey."""
VALKEY_PORT = 6379  # valkey-server's port without --port
UID = 10001
DOWNWARD_API = {"NODE_NAME": "spec.nodeName", "POD_NAME": "metadata.name", "POD_NAMESPACE": "metadata.namespace"}
FIELD_VALUES = {"spec.nodeName": "node-1", "metadata.name": "example-pod-1", "metadata.namespace": "default"}
TEST_URL = "https://discord.com/api/webhooks/123456789012345678/test-token"
TEST_PASSWORD = "test-redis-password"
RBAC_KINDS = {"Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding"}
_ENV = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?P<default>:-[^}]*)?\}")

manifests = pytest.mark.parametrize("manifest", sorted(WORKLOADS))
pods = pytest.mark.parametrize("manifest", sorted(PODS))


# ── reading the manifests ───────────────────────────────────────────────────


def documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc]


def kustomization() -> dict[str, Any]:
    found: dict[str, Any] = yaml.safe_load((K8S / "kustomization.yaml").read_text(encoding="utf-8"))
    return found


def generated_configmaps() -> dict[str, dict[str, Path]]:
    """Each ConfigMap of the configMapGenerator: its keys and the files they are made of."""
    made: dict[str, dict[str, Path]] = {}
    for generator in kustomization().get("configMapGenerator", []):
        files: dict[str, Path] = {}
        for entry in generator.get("files", []):
            key, _, source = entry.rpartition("=")
            files[key or Path(source).name] = K8S / source
        made[generator["name"]] = files
    return made


def secrets_to_create() -> dict[str, set[str]]:
    """The Secrets kustomization.yaml's comments say to create, each with its keys:
    ``kubectl create secret generic NAME --from-literal=KEY=...`` (lines joined at a backslash)."""
    commands: list[str] = []
    joined = False
    for line in (K8S / "kustomization.yaml").read_text(encoding="utf-8").splitlines():
        if not line.startswith("#"):
            joined = False
            continue
        text = line.removeprefix("#").strip()
        if joined:
            commands[-1] += " " + text
        else:
            commands.append(text)
        joined = commands[-1].endswith("\\")
        commands[-1] = commands[-1].removesuffix("\\")
    made: dict[str, set[str]] = {}
    for command in commands:
        if command.startswith("kubectl create secret generic "):
            words = shlex.split(command)
            literals = [w.removeprefix("--from-literal=") for w in words[5:] if w.startswith("--from-literal=")]
            assert literals and all("=" in literal for literal in literals), command
            made[words[4]] = {literal.partition("=")[0] for literal in literals}
    return made


def workload(manifest: str) -> dict[str, Any]:
    kind, name = PODS[manifest]
    found = [d for d in documents(K8S / manifest) if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, f"{manifest} holds no {kind} {name}"
    return found[0]


def pod_spec(manifest: str) -> dict[str, Any]:
    spec: dict[str, Any] = workload(manifest)["spec"]["template"]["spec"]
    return spec


def all_containers(spec: dict[str, Any]) -> list[dict[str, Any]]:
    return [*spec.get("initContainers", []), *spec["containers"]]


def tailhook_container(spec: dict[str, Any]) -> dict[str, Any]:
    found: list[dict[str, Any]] = [c for c in spec["containers"] if c["name"] == "tailhook"]
    assert len(found) == 1, "the pod has no container named tailhook"
    return found[0]


def volume(spec: dict[str, Any], name: str) -> dict[str, Any]:
    found: list[dict[str, Any]] = [v for v in spec["volumes"] if v["name"] == name]
    assert len(found) == 1, f"no volume {name!r}"
    return found[0]


def mount_of(container: dict[str, Any], path: PurePosixPath) -> dict[str, Any]:
    """The volumeMount *path* is in (the deepest one): it must have one."""
    under = [
        m
        for m in container.get("volumeMounts", [])
        if path == (at := PurePosixPath(m["mountPath"])) or at in path.parents
    ]
    assert under, f"{path} is in no volumeMount of container {container['name']}"
    assert all("subPath" not in m for m in under), "a subPath mount does not see ConfigMap or Secret updates"
    return max(under, key=lambda m: len(m["mountPath"]))


def config_path(container: dict[str, Any]) -> PurePosixPath:
    args = container["args"]
    assert args[:2] == ["run", "-c"], args
    return PurePosixPath(args[2])


def config_map(manifest: str) -> tuple[PurePosixPath, dict[str, Path]]:
    """Where the tailhook container's config folder is mounted, and the ConfigMap's keys and files."""
    spec = pod_spec(manifest)
    container = tailhook_container(spec)
    mount = mount_of(container, config_path(container))
    source = volume(spec, mount["name"])
    assert "configMap" in source, f"{config_path(container)} is not in a ConfigMap volume"
    name = source["configMap"]["name"]
    made = generated_configmaps()
    assert name in made, f"kustomization.yaml makes no ConfigMap {name!r}"
    return PurePosixPath(mount["mountPath"]), made[name]


def secret_files(config: dict[str, Any]) -> list[str]:
    """The files of *config* that hold secrets: each destination's ``url_file``, the fleet's
    ``password_file``."""
    files = []
    for destination in config.get("destinations", {}).values():
        assert "url_file" in destination, "a destination whose URL is not a file (the Secret)"
        files.append(destination["url_file"])
    if "password_file" in config.get("fleet", {}):
        files.append(config["fleet"]["password_file"])
    return files


def carried_config(manifest: str) -> dict[str, Any]:
    folder, files = config_map(manifest)
    key = str(config_path(tailhook_container(pod_spec(manifest))).relative_to(folder))
    assert key in files, f"the ConfigMap has no key {key!r}"
    config: dict[str, Any] = yaml.safe_load(files[key].read_text(encoding="utf-8"))
    return config


def in_pod(manifest: str, path: str) -> PurePosixPath:
    """*path* of the config as the daemon in the pod resolves it: from the config file's folder."""
    assert "${" not in path, f"{path}: a path the test cannot check"
    return config_path(tailhook_container(pod_spec(manifest))).parent / path


def glob_folder(pattern: PurePosixPath) -> PurePosixPath:
    """The folder a glob reads from: its part before the first wildcard."""
    parts = pattern.parts
    first = next((i for i, part in enumerate(parts) if any(c in part for c in "*?[")), len(parts) - 1)
    return PurePosixPath(*parts[:first])


def port_number(container: dict[str, Any], port: int | str) -> int:
    if isinstance(port, int):
        return port
    named = [p["containerPort"] for p in container.get("ports", []) if p.get("name") == port]
    assert named, f"the container names no port {port!r}"
    return int(named[0])


def quantity(value: str | int) -> float:
    """A Kubernetes quantity such as 100m, 64Mi or 1 in base units (cores, bytes)."""
    text = str(value)
    for suffix, factor in (("Ki", 2**10), ("Mi", 2**20), ("Gi", 2**30), ("m", 1e-3)):
        if text.endswith(suffix):
            return float(text.removesuffix(suffix)) * factor
    return float(text)


def effective_security(spec: dict[str, Any], container: dict[str, Any]) -> dict[str, Any]:
    """The container's securityContext over the pod's (for the fields both have)."""
    pod = {
        k: v
        for k, v in spec.get("securityContext", {}).items()
        if k in ("runAsNonRoot", "runAsUser", "runAsGroup", "seccompProfile")
    }
    return {**pod, **container.get("securityContext", {})}


def materialize(manifest: str, folder: Path) -> Path:
    """The ConfigMap's files as the pod sees them, in *folder*; the config file's path.

    ``tailhook check`` reads each ``url_file`` (it must hold a webhook URL) and the fleet's
    ``password_file``, and the real ones are the Secrets mounted in the pod alone: the copy names
    temporary files holding a test URL and password instead. Everything else is as in the pod,
    relative paths read from the same folder.
    """
    mount, files = config_map(manifest)
    config_file = config_path(tailhook_container(pod_spec(manifest)))
    etc = folder / "etc-tailhook"
    etc.mkdir()
    for key, source in files.items():
        (etc / key).write_bytes(source.read_bytes())
    secret = folder / "webhook-url"
    secret.write_text(TEST_URL + "\n", encoding="utf-8")
    secret.chmod(0o600)
    password = folder / "redis-password"
    password.write_text(TEST_PASSWORD, encoding="utf-8")  # as --from-literal makes it: no newline
    password.chmod(0o600)
    config = carried_config(manifest)
    for destination in config.get("destinations", {}).values():
        assert "url_file" in destination, "a destination whose URL is not a file (the Secret)"
        destination["url_file"] = str(secret)
    if "password_file" in config.get("fleet", {}):
        config["fleet"]["password_file"] = str(password)
    copy = etc / str(config_file.relative_to(mount))
    copy.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return copy


# ── schemas ─────────────────────────────────────────────────────────────────


def kubernetes_validate() -> Any:
    return pytest.importorskip(
        "kubernetes_validate", reason="kubernetes-validate is not installed (pip install kubernetes-validate)"
    )


def validate(docs: list[dict[str, Any]], version: str, where: str) -> None:
    """Each resource against the strict schema (unknown fields are errors) of Kubernetes *version*."""
    kv = kubernetes_validate()
    for doc in docs:
        name = f"{where}: {doc.get('kind')}/{doc.get('metadata', {}).get('name')}"
        try:
            kv.validate(doc, version, strict=True)
        except kv.ValidationError as exc:
            pytest.fail(f"{name} is not valid for Kubernetes {version}: {'.'.join(map(str, exc.path))}: {exc.message}")
        except kv.SchemaNotFoundError as exc:  # the CLI only warns: an unknown kind is an error here
            pytest.fail(f"{name}: {exc.message}")


def versions() -> Iterator[str]:
    """The newest Kubernetes kubernetes-validate knows, and 1.30, the oldest these manifests are for."""
    yield kubernetes_validate().latest_version()
    yield "1.30"


@pods
def test_each_manifest_is_valid_for_current_kubernetes(manifest: str) -> None:
    for version in versions():
        validate(documents(K8S / manifest), version, manifest)


def test_the_kustomization_lists_every_manifest_and_its_files_exist() -> None:
    found = kustomization()
    assert found["kind"] == "Kustomization"
    assert sorted(found["resources"]) == sorted(PODS)
    for files in generated_configmaps().values():
        for source in files.values():
            assert source.is_file(), source
    # ConfigMap edits must reach running pods (the daemon reloads them): no hash in the names.
    assert found["generatorOptions"]["disableNameSuffixHash"] is True


def kustomize_build() -> list[dict[str, Any]]:
    """What ``kubectl apply -k packaging/kubernetes`` would apply."""
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed")
    built = subprocess.run([kubectl, "kustomize", str(K8S)], capture_output=True, text=True, check=False, timeout=20)
    assert built.returncode == 0, built.stderr
    return [doc for doc in yaml.safe_load_all(built.stdout) if doc]


def test_kubectl_kustomize_builds_the_manifests_and_the_configmaps() -> None:
    docs = kustomize_build()
    kinds = sorted((d["kind"], d["metadata"]["name"]) for d in docs)
    assert kinds == [
        ("ConfigMap", "tailhook-node"),
        ("ConfigMap", "tailhook-sidecar"),
        ("DaemonSet", "tailhook-node"),
        ("Deployment", "example-app"),
        ("Deployment", "tailhook-redis"),
        ("NetworkPolicy", "tailhook-redis"),
        ("Service", "tailhook-redis"),
        ("ServiceAccount", "tailhook-node"),
    ]
    for doc in docs:
        if doc["kind"] == "ConfigMap":
            files = generated_configmaps()[doc["metadata"]["name"]]
            assert doc["data"] == {key: path.read_text(encoding="utf-8") for key, path in files.items()}


def test_the_kustomize_build_is_valid_for_current_kubernetes() -> None:
    kubernetes_validate()
    docs = kustomize_build()
    for version in versions():
        validate(docs, version, "kubectl kustomize")


# ── the daemon and its config ───────────────────────────────────────────────


@manifests
def test_the_carried_config_passes_tailhook_check(manifest: str, tmp_path: Path) -> None:
    config = materialize(manifest, tmp_path)
    env = {k: v for k, v in os.environ.items() if k not in DOWNWARD_API and not k.startswith("TAILHOOK_")}
    # The variables the container has: its Downward API values as the kubelet would fill them in.
    for item in tailhook_container(pod_spec(manifest)).get("env", []):
        env[item["name"]] = (
            item["value"] if "value" in item else FIELD_VALUES[item["valueFrom"]["fieldRef"]["fieldPath"]]
        )
    checked = subprocess.run(
        [sys.executable, "-m", "tailhook", "check", "-c", str(config)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        check=False,
        timeout=20,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert ": OK: " in checked.stdout
    assert " 0 rules" not in checked.stdout
    warnings = [
        line
        for line in checked.stderr.splitlines()
        if line.strip() and "systemd-python is not installed" not in line  # the journal reader is the image's
    ]
    assert warnings == [], "tailhook check warned:\n" + "\n".join(warnings)
    assert "test-token" not in checked.stdout + checked.stderr
    assert TEST_PASSWORD not in checked.stdout + checked.stderr


@manifests
def test_every_environment_variable_of_the_config_is_the_containers(manifest: str) -> None:
    container = tailhook_container(pod_spec(manifest))
    env = {item["name"]: item for item in container.get("env", [])}
    for name, field in DOWNWARD_API.items():
        assert env[name]["valueFrom"]["fieldRef"]["fieldPath"] == field
    _, files = config_map(manifest)
    for path in files.values():
        for found in _ENV.finditer(path.read_text(encoding="utf-8")):
            if found["default"] is None:
                assert found["name"] in env, f"{path.name} uses ${{{found['name']}}}, which the container lacks"


@manifests
def test_the_ports_and_probes_are_the_configs_http_listen(manifest: str) -> None:
    spec = pod_spec(manifest)
    container = tailhook_container(spec)
    host, _, port = carried_config(manifest)["http"]["listen"].rpartition(":")
    # The kubelet probes the pod's IP, and Prometheus scrapes it: every interface, not loopback.
    assert not host or ipaddress.ip_address(host.strip("[]")).is_unspecified, host
    assert [p["containerPort"] for p in container["ports"] if p["name"] == "metrics"] == [int(port)]
    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        get = container[probe]["httpGet"]
        assert get["path"] == path
        assert port_number(container, get["port"]) == int(port)
        assert get.get("scheme", "HTTP") == "HTTP"
    annotations = workload(manifest)["spec"]["template"]["metadata"].get("annotations", {})
    assert annotations.get("prometheus.io/port", port) == port


async def test_the_daemon_answers_the_probes_paths() -> None:
    """The liveness path asks live() and the readiness path ready(), as the daemon's server routes them."""
    paths = {
        (c["livenessProbe"]["httpGet"]["path"], c["readinessProbe"]["httpGet"]["path"])
        for c in (tailhook_container(pod_spec(m)) for m in WORKLOADS)
    }
    assert len(paths) == 1
    ((live, ready),) = paths

    server = HttpServer("127.0.0.1:0", live=lambda: None, ready=lambda: "starting", exposition=Registry().exposition)
    await server.start()
    try:
        async with aiohttp.ClientSession() as session:
            async with session.get(f"http://127.0.0.1:{server.port}{live}") as answer:
                assert answer.status == 200
            async with session.get(f"http://127.0.0.1:{server.port}{ready}") as answer:
                assert answer.status == 503
                assert "starting" in await answer.text()
    finally:
        await server.stop()


@manifests
def test_every_path_the_config_names_is_mounted(manifest: str) -> None:
    spec = pod_spec(manifest)
    container = tailhook_container(spec)
    config = carried_config(manifest)
    mounted = {m["mountPath"] for m in container["volumeMounts"]}

    for source in config["sources"]:
        if source.get("type", "file") == "file":
            for pattern in source["paths"]:
                folder = glob_folder(in_pod(manifest, pattern))
                assert mount_of(container, folder).get("readOnly") is True, f"{folder} is mounted writable"
                if folder == PurePosixPath("/var/log/containers"):  # links into /var/log/pods
                    assert source.get("format") == "cri"
                    assert "/var/log/pods" in mounted, "the links in /var/log/containers point into /var/log/pods"
        else:
            folder = in_pod(manifest, source["directory"])
            assert mount_of(container, folder).get("readOnly") is True, f"{folder} is mounted writable"

    state = mount_of(container, in_pod(manifest, config["state_dir"]))
    assert not state.get("readOnly", False)
    kinds = volume(spec, state["name"]).keys() & {"emptyDir", "hostPath", "persistentVolumeClaim"}
    assert kinds, "the state must be on a volume of its own, not in the read-only image"

    assert secret_files(config), "the config names no url_file"
    for file in secret_files(config):
        path = in_pod(manifest, file)
        mount = mount_of(container, path)
        assert mount.get("readOnly") is True, f"{path} is mounted writable"
        secret = volume(spec, mount["name"])["secret"]
        items = {item["path"]: item["key"] for item in secret["items"]}
        assert str(path.relative_to(mount["mountPath"])) in items, f"{path} is no item of its Secret"
        assert secret["defaultMode"] == 0o400
        # With fsGroup the kubelet makes the file 0440 root:fsGroup; without, uid 10001 cannot read it.
        assert spec["securityContext"]["fsGroup"] == UID

    folder, _ = config_map(manifest)
    for pattern in config["rules"]["paths"]:
        assert mount_of(container, in_pod(manifest, pattern))["mountPath"] == str(folder)


@manifests
def test_the_configmap_keys_are_the_files_the_config_names(manifest: str) -> None:
    folder, files = config_map(manifest)
    named = {str(config_path(tailhook_container(pod_spec(manifest))).relative_to(folder))}
    for pattern in carried_config(manifest)["rules"]["paths"]:
        rules = str(in_pod(manifest, pattern).relative_to(folder))
        matched = {key for key in files if fnmatch.fnmatch(key, rules)}
        assert matched, f"no key of the ConfigMap is {rules}"
        named |= matched
    assert set(files) == named


@pods
def test_every_secret_is_one_the_kustomization_says_to_create(manifest: str) -> None:
    """Each Secret a pod reads (a volume's items, an env var's secretKeyRef) is one the comments of
    kustomization.yaml say to create, with that key; none is optional (without its webhook tailhook
    has nowhere to send, without its password Valkey would take any client)."""
    spec = pod_spec(manifest)
    used: list[tuple[str, str, dict[str, Any]]] = []
    for source in spec["volumes"]:
        if "secret" in source:
            secret = source["secret"]
            assert secret.get("items"), f"{source['name']}: name the keys it needs"
            used += [(secret["secretName"], item["key"], secret) for item in secret["items"]]
            mounts = [m["name"] for c in all_containers(spec) for m in c.get("volumeMounts", [])]
            assert source["name"] in mounts, f"the Secret volume {source['name']} is mounted nowhere"
    for container in all_containers(spec):
        assert "envFrom" not in container, f"{container['name']}: name each variable it needs"
        for item in container.get("env", []):
            if "secretKeyRef" in item.get("valueFrom", {}):
                ref = item["valueFrom"]["secretKeyRef"]
                used.append((ref["name"], ref["key"], ref))
    assert used, f"{manifest} reads no Secret"
    made = secrets_to_create()
    for name, key, where in used:
        assert name in made, f"kustomization.yaml does not say to create the Secret {name}"
        assert key in made[name], f"kustomization.yaml creates {name} without the key {key}"
        assert where.get("optional") is not True, f"{name} is optional"


# ── the pod ─────────────────────────────────────────────────────────────────


@manifests
def test_the_tailhook_container_runs_the_image_and_the_config(manifest: str) -> None:
    container = tailhook_container(pod_spec(manifest))
    assert container["image"] == "tailhook:latest"
    assert container["imagePullPolicy"] == "IfNotPresent"
    assert container["args"] == ["run", "-c", "/etc/tailhook/tailhook.yaml"]
    assert "command" not in container, "the image's entrypoint is tailhook"


@manifests
def test_the_tailhook_container_is_locked_down(manifest: str) -> None:
    spec = pod_spec(manifest)
    security = effective_security(spec, tailhook_container(spec))
    assert security["runAsNonRoot"] is True
    assert security["runAsUser"] == UID
    assert security["runAsGroup"] == UID
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert security["seccompProfile"] == {"type": "RuntimeDefault"}
    assert not security.get("privileged", False)
    assert spec["securityContext"]["runAsNonRoot"] is True
    for host in ("hostNetwork", "hostPID", "hostIPC"):
        assert not spec.get(host, False)
    assert spec["automountServiceAccountToken"] is False


@pods
def test_every_pod_and_container_is_locked_down(manifest: str) -> None:
    spec = pod_spec(manifest)
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["automountServiceAccountToken"] is False
    for host in ("hostNetwork", "hostPID", "hostIPC"):
        assert not spec.get(host, False)
    for container in all_containers(spec):
        security = effective_security(spec, container)
        assert security["allowPrivilegeEscalation"] is False, container["name"]
        assert security["readOnlyRootFilesystem"] is True, container["name"]
        assert security["capabilities"]["drop"] == ["ALL"], container["name"]
        assert security["seccompProfile"] == {"type": "RuntimeDefault"}, container["name"]
        if security.get("runAsUser") == 0:  # the DaemonSet's chown of its state folder on the node
            assert container in spec.get("initContainers", []), f"{container['name']} runs as root"
            assert security["capabilities"].get("add") == ["CHOWN"]
        else:
            assert security["runAsNonRoot"] is True, container["name"]
            assert "add" not in security["capabilities"], container["name"]
        assert not security.get("privileged", False), container["name"]


@pods
def test_every_container_has_requests_and_limits(manifest: str) -> None:
    for container in all_containers(pod_spec(manifest)):
        resources = container["resources"]
        for what in ("cpu", "memory"):
            request, limit = resources["requests"][what], resources["limits"][what]
            assert 0 < quantity(request) <= quantity(limit), f"{container['name']}: {what} {request} > {limit}"


def test_the_sidecar_reads_what_the_app_writes_and_its_spool_fits_its_volume() -> None:
    spec = pod_spec("sidecar.yaml")
    tailhook = tailhook_container(spec)
    config = carried_config("sidecar.yaml")
    (source,) = config["sources"]
    logs = mount_of(tailhook, glob_folder(in_pod("sidecar.yaml", source["paths"][0])))
    assert "emptyDir" in volume(spec, logs["name"])
    writers = [
        c
        for c in spec["containers"]
        if c is not tailhook
        and any(m["name"] == logs["name"] and not m.get("readOnly", False) for m in c.get("volumeMounts", []))
    ]
    assert writers, "no container writes into the folder tailhook reads"

    state = volume(spec, mount_of(tailhook, in_pod("sidecar.yaml", config["state_dir"]))["name"])
    # The spool stays below the emptyDir's sizeLimit, past which the kubelet evicts the pod.
    assert parse_size(config["spool"]["max_bytes"]) < quantity(state["emptyDir"]["sizeLimit"]) / 2


def test_the_daemonset_runs_on_every_node_without_api_access() -> None:
    spec = pod_spec("daemonset.yaml")
    assert {"operator": "Exists"} in spec["tolerations"]
    accounts = [d for d in documents(K8S / "daemonset.yaml") if d["kind"] == "ServiceAccount"]
    assert [a["metadata"]["name"] for a in accounts] == [spec["serviceAccountName"]]
    assert accounts[0]["automountServiceAccountToken"] is False
    for manifest in PODS:
        assert not {d["kind"] for d in documents(K8S / manifest)} & RBAC_KINDS


def test_the_daemonset_mounts_the_nodes_logs_read_only_and_keeps_its_state() -> None:
    spec = pod_spec("daemonset.yaml")
    container = tailhook_container(spec)
    host_paths = {}
    for mount in container["volumeMounts"]:
        source = volume(spec, mount["name"])
        if "hostPath" in source:
            host_paths[mount["mountPath"]] = (mount["name"], source["hostPath"], mount.get("readOnly", False))
    for folder in ("/var/log/pods", "/var/log/containers", "/var/log/journal"):
        assert host_paths[folder][1:] == ({"path": folder, "type": "Directory"}, True)
    state_dir = str(in_pod("daemonset.yaml", carried_config("daemonset.yaml")["state_dir"]))
    (mount_path,) = [folder for folder in host_paths if state_dir.startswith(folder + "/") or state_dir == folder]
    state, host_path, read_only = host_paths[mount_path]
    assert host_path["type"] == "DirectoryOrCreate"
    assert not read_only
    assert host_path["path"] != "/var/lib/tailhook", "a tailhook installed on the node keeps its state there"
    # The init container hands the state folder, which the kubelet makes as root, to tailhook's uid.
    (init,) = spec["initContainers"]
    assert [(m["name"], m["mountPath"]) for m in init["volumeMounts"]] == [(state, mount_path)]
    assert f"os.chown({mount_path!r}, {UID}, {UID})" in init["command"][-1]


def test_the_daemonset_skips_its_own_container_log() -> None:
    """An alert about a line of tailhook's own log must not raise another: its file is excluded."""
    (containers,) = [s for s in carried_config("daemonset.yaml")["sources"] if s.get("format") == "cri"]
    name = workload("daemonset.yaml")["metadata"]["name"]
    container_id = "0123456789abcdef" * 4

    def excluded(file: str) -> bool:
        return any(fnmatch.fnmatch(file, pattern) for pattern in containers["exclude"])

    # /var/log/containers/POD_NAMESPACE_CONTAINER-ID.log; a DaemonSet's pods are NAME-xxxxx.
    assert excluded(f"{name}-x7k2p_monitoring_tailhook-{container_id}.log")
    assert not excluded(f"example-app-5d8f9c7b6-x7k2p_default_app-{container_id}.log")
    assert not excluded(f"{name}-x7k2p_monitoring_other-{container_id}.log")


# ── fleet mode: Valkey (redis.yaml) ─────────────────────────────────────────


def redis_resource(kind: str) -> dict[str, Any]:
    found = [d for d in documents(K8S / REDIS) if d["kind"] == kind]
    assert len(found) == 1, f"{REDIS} holds no single {kind}"
    return found[0]


def valkey_container() -> dict[str, Any]:
    container: dict[str, Any]
    (container,) = pod_spec(REDIS)["containers"]
    assert container["args"][0] == "valkey-server", "the image's entrypoint runs valkey-server with these"
    return container


def valkey_options(container: dict[str, Any]) -> dict[str, list[str]]:
    """valkey-server's ``--name value...`` arguments."""
    options: dict[str, list[str]] = {}
    name = ""
    for word in container["args"][1:]:
        if word.startswith("--"):
            name = word.removeprefix("--")
            assert name not in options, f"--{name} is given twice"
            options[name] = []
        else:
            assert name, f"{word!r} follows no option"
            options[name].append(word)
    return options


def valkey_port(container: dict[str, Any]) -> int:
    """The port valkey-server listens on, and the container's port of that number."""
    port = int(valkey_options(container).get("port", [str(VALKEY_PORT)])[0])
    assert port in [p["containerPort"] for p in container["ports"]], f"the container names no port {port}"
    return port


def valkey_bytes(value: str) -> int:
    """A valkey-server memory size: 64mb (MiB), 64m (MB), or bytes."""
    units = {"kb": 2**10, "mb": 2**20, "gb": 2**30, "k": 10**3, "m": 10**6, "g": 10**9}
    found = re.fullmatch(r"(\d+)(kb|mb|gb|k|m|g)?", value.lower())
    assert found, value
    return int(found[1]) * units.get(found[2] or "", 1)


def selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """Whether a label selector (matchLabels and matchExpressions) selects a pod with *labels*."""
    if any(labels.get(key) != value for key, value in selector.get("matchLabels", {}).items()):
        return False
    for expression in selector.get("matchExpressions", []):
        key, operator, values = expression["key"], expression["operator"], expression.get("values", [])
        if operator == "In":
            met = key in labels and labels[key] in values
        elif operator == "NotIn":
            met = key not in labels or labels[key] not in values
        elif operator == "Exists":
            met = key in labels
        elif operator == "DoesNotExist":
            met = key not in labels
        else:
            pytest.fail(f"unknown selector operator {operator}")
        if not met:
            return False
    return True


def template_labels(manifest: str) -> dict[str, str]:
    labels: dict[str, str] = workload(manifest)["spec"]["template"]["metadata"]["labels"]
    return labels


def fleet_members() -> list[str]:
    """The manifests of tailhooks whose config has ``fleet:``."""
    return [manifest for manifest in sorted(WORKLOADS) if "fleet" in carried_config(manifest)]


def test_the_sidecars_are_a_fleet() -> None:
    assert "sidecar.yaml" in fleet_members()
    # Fleet mode is for many tailhooks sharing one webhook.
    assert workload("sidecar.yaml")["spec"]["replicas"] > 1


def test_valkey_is_one_pod_behind_the_service() -> None:
    deployment = workload(REDIS)
    # Two Valkeys behind one Service would split the fleet's budgets between them.
    assert deployment["spec"]["replicas"] == 1
    labels = template_labels(REDIS)
    assert selects(deployment["spec"]["selector"], labels)
    service = redis_resource("Service")
    assert service["spec"].get("type", "ClusterIP") == "ClusterIP"
    assert service["spec"]["selector"] and selects({"matchLabels": service["spec"]["selector"]}, labels)
    for manifest in WORKLOADS:
        assert not selects({"matchLabels": service["spec"]["selector"]}, template_labels(manifest)), manifest
    container = valkey_container()
    for port in service["spec"]["ports"]:
        assert port.get("protocol", "TCP") == "TCP"
        assert port_number(container, port.get("targetPort", port["port"])) == valkey_port(container)


def test_valkeys_probes_ask_its_port() -> None:
    container = valkey_container()
    for probe in ("livenessProbe", "readinessProbe"):
        assert port_number(container, container[probe]["tcpSocket"]["port"]) == valkey_port(container), probe


def test_valkey_requires_the_password_and_keeps_nothing() -> None:
    container = valkey_container()
    options = valkey_options(container)
    (password,) = options["requirepass"]
    variable = re.fullmatch(r"\$\((\w+)\)", password)
    assert variable, "--requirepass takes the password from an environment variable: $(NAME)"
    env = {item["name"]: item for item in container.get("env", [])}
    assert variable[1] in env, f"the container has no variable {variable[1]}; the kubelet would pass $(...) as is"
    ref = env[variable[1]]["valueFrom"]["secretKeyRef"]
    assert ref["key"] in secrets_to_create().get(ref["name"], set()), "the password's Secret is not the kustomization's"
    # Only counters and keys that expire: no snapshot, no append-only file.
    assert options["save"] == [""]
    assert options["appendonly"] == ["no"]
    # Past maxmemory Valkey evicts keys rather than refusing writes; fragmentation and client buffers
    # come on top of it, so it is at most half the memory limit.
    assert options["maxmemory-policy"] != ["noeviction"]
    (maxmemory,) = options["maxmemory"]
    limit = quantity(container["resources"]["limits"]["memory"])
    assert 0 < valkey_bytes(maxmemory) <= limit / 2, f"maxmemory {maxmemory} leaves too little of {limit}"
    # The root filesystem is read-only (the lock-down test): its working folder is a writable emptyDir.
    (folder,) = options.get("dir", ["/data"])  # the image's WORKDIR
    mount = mount_of(container, PurePosixPath(folder))
    assert not mount.get("readOnly", False)
    assert "emptyDir" in volume(pod_spec(REDIS), mount["name"])


def test_only_the_fleets_pods_may_reach_valkey() -> None:
    policy = redis_resource("NetworkPolicy")["spec"]
    container = valkey_container()
    assert selects(policy["podSelector"], template_labels(REDIS))
    assert "Ingress" in policy["policyTypes"]
    admitted: set[str] = set()
    for rule in policy["ingress"]:
        # A rule without from, or a peer without a podSelector, would admit more than the fleet.
        assert rule.get("from"), "an ingress rule that admits every pod"
        assert rule.get("ports"), "an ingress rule for every port"
        for peer in rule["from"]:
            assert "ipBlock" not in peer
            assert peer.get("podSelector", {}).get("matchLabels") or peer.get("podSelector", {}).get(
                "matchExpressions"
            ), "a peer that admits every pod of its namespaces"
        for port in rule["ports"]:
            assert port.get("protocol", "TCP") == "TCP"
            assert port_number(container, port["port"]) == valkey_port(container)
        admitted |= {m for m in WORKLOADS if any(selects(p["podSelector"], template_labels(m)) for p in rule["from"])}
    # Every pod whose tailhook is a fleet member, and none other.
    assert sorted(admitted) == fleet_members()


def test_the_fleet_asks_the_service_with_valkeys_password() -> None:
    service = redis_resource("Service")
    (port,) = service["spec"]["ports"]
    (password_env,) = valkey_container()["env"]
    valkey_secret = password_env["valueFrom"]["secretKeyRef"]
    for manifest in fleet_members():
        fleet = carried_config(manifest)["fleet"]
        url = urlsplit(fleet["redis"])
        assert url.scheme == "redis", "the Valkey of redis.yaml serves no TLS"
        # The Service's name, from the pod's namespace (or NAME.NAMESPACE[.svc...]).
        assert url.hostname == service["metadata"]["name"] or str(url.hostname).startswith(
            service["metadata"]["name"] + "."
        ), url.hostname
        assert (url.port or VALKEY_PORT) == port["port"]
        # The password file is an item of the Secret Valkey takes its password from.
        assert "password" not in fleet, "a password in the ConfigMap"
        spec = pod_spec(manifest)
        path = in_pod(manifest, fleet["password_file"])
        mount = mount_of(tailhook_container(spec), path)
        secret = volume(spec, mount["name"])["secret"]
        keys = {item["path"]: item["key"] for item in secret["items"]}
        key = keys[str(path.relative_to(mount["mountPath"]))]
        assert (secret["secretName"], key) == (valkey_secret["name"], valkey_secret["key"])


def host_of_pod(manifest: str, fields: dict[str, str]) -> str:
    """The config's ``host`` in a pod whose Downward API fields are *fields*."""
    env = {
        item["name"]: item["value"] if "value" in item else fields[item["valueFrom"]["fieldRef"]["fieldPath"]]
        for item in tailhook_container(pod_spec(manifest)).get("env", [])
        if "value" in item or "fieldRef" in item.get("valueFrom", {})
    }
    host: str = carried_config(manifest)["host"]
    return _ENV.sub(lambda found: env[found["name"]], host)


def test_each_fleet_member_is_a_host_of_its_own() -> None:
    """The fleet counts per host: two pods of one workload (two replicas on one node, or a
    DaemonSet's pods on two nodes) must have two hosts."""
    assert fleet_members()
    for manifest in fleet_members():
        other = {**FIELD_VALUES, "metadata.name": "example-pod-2"}
        if workload(manifest)["kind"] == "DaemonSet":
            other["spec.nodeName"] = "node-2"
        assert host_of_pod(manifest, FIELD_VALUES) != host_of_pod(manifest, other), f"{manifest}: two pods, one host"
