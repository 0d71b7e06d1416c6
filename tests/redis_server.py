"""A real redis-server for the fleet tests: the Debian package, on a free loopback port, no persistence."""

from __future__ import annotations

import contextlib
import shutil
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RedisServer:
    """``redis-server`` in a subprocess; ``kill()`` and ``start()`` again on the same port. With *tls*,
    it speaks only TLS, with a self-signed certificate for 127.0.0.1 (``certificate``, for clients to
    trust); with *password*, it asks for it."""

    def __init__(self, directory: Path, *, tls: bool = False, password: str | None = None) -> None:
        self.directory = directory
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.password = password
        self.certificate: Path | None = None
        if tls:
            self.certificate, self._key = directory / "redis.crt", directory / "redis.key"
            subprocess.run(
                ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1",
                 "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(self._key), "-out", str(self.certificate)],
                check=True, capture_output=True,
            )  # fmt: skip

    @property
    def url(self) -> str:
        return f"{'rediss' if self.certificate else 'redis'}://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.fail("redis-server is not installed: the test command installs it (scripts/system-deps.sh)")
        listen = ["--port", str(self.port)]
        if self.certificate is not None:
            listen = ["--port", "0", "--tls-port", str(self.port), "--tls-cert-file", str(self.certificate),
                      "--tls-key-file", str(self._key), "--tls-ca-cert-file", str(self.certificate),
                      "--tls-auth-clients", "no"]  # fmt: skip
        if self.password is not None:
            listen += ["--requirepass", self.password]
        self.process = subprocess.Popen(
            [binary, *listen, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.directory), "--logfile", str(self.directory / "redis.log")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while not self._answers():
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise AssertionError(
                    f"redis-server did not start: {(self.directory / 'redis.log').read_text()[-2000:]}"
                )
            time.sleep(0.02)
        return self

    def _answers(self) -> bool:
        """Whether it answers a ``PING`` (``-NOAUTH`` too: it is up, and wants its password)."""
        with contextlib.suppress(OSError), contextlib.ExitStack() as stack:
            sock = stack.enter_context(socket.create_connection(("127.0.0.1", self.port), timeout=0.5))
            if self.certificate is not None:
                context = ssl.create_default_context(cafile=self.certificate)
                sock = stack.enter_context(context.wrap_socket(sock, server_hostname="127.0.0.1"))
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith((b"+PONG", b"-NOAUTH"))
        return False

    def client(self) -> redis.Redis:
        """A client of this server (its certificate trusted, its password given); close it after use."""
        tls = {"ssl_ca_certs": str(self.certificate)} if self.certificate else {}
        return redis.Redis.from_url(self.url, password=self.password, **tls)

    def stored(self) -> list[tuple[bytes, bytes]]:
        """Every key and its value as Redis serialises it (``DUMP``), to look for what must not be there."""
        client = self.client()
        try:
            return [(key, client.dump(key) or b"") for key in client.scan_iter("*")]
        finally:
            client.close()

    def calls(self, command: str) -> int:
        """How many times *command* (``evalsha``) ran since this server started (``INFO commandstats``)."""
        client = self.client()
        try:
            stats = client.info("commandstats")
        finally:
            client.close()
        return int(stats.get(f"cmdstat_{command}", {}).get("calls", 0))

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


@contextlib.contextmanager
def redis_server(directory: Path, *, tls: bool = False, password: str | None = None) -> Iterator[RedisServer]:
    server = RedisServer(directory, tls=tls, password=password).start()
    try:
        yield server
    finally:
        server.kill()
