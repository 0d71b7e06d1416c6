"""The Kubernetes manifests are valid for a current Kubernetes, and agree with the daemon and the
configs they carry: ports and probes, mounts, ConfigMap keys, the Secret, security and resources.

Schema validation needs the kubernetes-validate package (in the dev extra); ``kubectl kustomize``
runs where kubectl is installed.
"""

from __future__ import annotations

import fnmatch
import ipaddress
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any

import aiohttp
import pytest
import yaml

from tailhook._units import parse_size
from tailhook.http import HttpServer
from tailhook.metrics import Registry

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "packaging" / "kubernetes"
WORKLOADS = {"sidecar.yaml": ("Deployment", "example-app"), "daemonset.yaml": ("DaemonSet", "tailhook-node")}
UID = 10001
DOWNWARD_API = {"NODE_NAME": "spec.nodeName", "POD_NAME": "metadata.name", "POD_NAMESPACE": "metadata.namespace"}
FIELD_VALUES = {"spec.nodeName": "node-1", "metadata.name": "example-pod-1", "metadata.namespace": "default"}
TEST_URL = "https://discord.com/api/webhooks/123456789012345678/test-token"
RBAC_KINDS = {"Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding"}
_ENV = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?P<default>:-[^}]*)?\}")

manifests = pytest.mark.parametrize("manifest", sorted(WORKLOADS))


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


def workload(manifest: str) -> dict[str, Any]:
    kind, name = WORKLOADS[manifest]
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

    ``tailhook check`` reads each ``url_file`` (it must hold a webhook URL), and the real one is the
    Secret mounted in the pod alone: the copy's ``url_file`` names a temporary file holding a test
    URL instead. Everything else is as in the pod, relative paths read from the same folder.
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
    config = carried_config(manifest)
    for destination in config.get("destinations", {}).values():
        assert "url_file" in destination, "a destination whose URL is not a file (the Secret)"
        destination["url_file"] = str(secret)
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


@manifests
def test_each_manifest_is_valid_for_current_kubernetes(manifest: str) -> None:
    for version in versions():
        validate(documents(K8S / manifest), version, manifest)


def test_the_kustomization_lists_every_manifest_and_its_files_exist() -> None:
    found = kustomization()
    assert found["kind"] == "Kustomization"
    assert sorted(found["resources"]) == sorted(WORKLOADS)
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

    for destination in config["destinations"].values():
        url_file = in_pod(manifest, destination["url_file"])
        mount = mount_of(container, url_file)
        secret = volume(spec, mount["name"])["secret"]
        items = {item["path"]: item["key"] for item in secret["items"]}
        assert str(url_file.relative_to(mount["mountPath"])) in items
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


@manifests
def test_the_secret_is_the_one_the_kustomization_says_to_create(manifest: str) -> None:
    spec = pod_spec(manifest)
    secrets = [v["secret"] for v in spec["volumes"] if "secret" in v]
    assert len(secrets) == 1
    (item,) = secrets[0]["items"]
    text = (K8S / "kustomization.yaml").read_text(encoding="utf-8")
    assert f"kubectl create secret generic {secrets[0]['secretName']}" in text
    assert f"--from-literal={item['key']}=" in text
    assert secrets[0].get("optional") is not True, "without its webhook tailhook has nowhere to send"


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


@manifests
def test_every_other_container_is_locked_down_too(manifest: str) -> None:
    spec = pod_spec(manifest)
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


@manifests
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
    for manifest in WORKLOADS:
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
