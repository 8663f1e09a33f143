"""A cluster for tests: a real redis-server, N real `python -m stream_server` processes sharing it
(tone provider), and a real nginx in front, round-robin with no stickiness.

nginx runs Debian's binary as this user (`nginx -p DIR -c DIR/nginx.conf`), with its pid, logs and
temporary files in a temporary directory and a free loopback port. Its proxy configuration is
deploy/nginx/stream-server.conf, the file docs/scaling.md shows: the fixture changes only the
upstream's `server` lines and the `listen` port, and fails if the file no longer has them.
"""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path

from .processes import ServerProcess, server_process
from .redis_server import RedisServer, free_port, redis_server

DEPLOY_NGINX_CONF = Path(__file__).resolve().parent.parent / "deploy" / "nginx" / "stream-server.conf"
NGINX = "/usr/sbin/nginx"
START_DEADLINE_S = 10.0
_UPSTREAM_SERVER = re.compile(r"^(\s*)server \S+:\d+;\n", re.MULTILINE)
_LISTEN = re.compile(r"^(\s*)listen 80;$", re.MULTILINE)

# The main file around deploy's (which is an http-level file, as in /etc/nginx/conf.d/).
_MAIN_CONF = """\
daemon off;
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log {dir}/access.log;
    client_body_temp_path {dir}/client_body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    include {dir}/stream-server.conf;
}}
"""


def proxy_config(template: str, upstreams: Sequence[str], listen: str) -> str:
    """deploy's config with these upstream addresses (`host:port`) and this `listen` address."""
    servers = _UPSTREAM_SERVER.findall(template)
    if not servers or len(_LISTEN.findall(template)) != 1:
        raise ValueError(f"{DEPLOY_NGINX_CONF} no longer has the upstream `server` lines and one `listen 80;`")
    indent = servers[0]
    lines = "".join(f"{indent}server {address};\n" for address in upstreams)
    first = _UPSTREAM_SERVER.search(template)
    assert first is not None
    config = template[: first.start()] + lines + _UPSTREAM_SERVER.sub("", template[first.start() :])
    return _LISTEN.sub(lambda match: f"{match.group(1)}listen {listen};", config)


@dataclass
class Nginx:
    port: int
    directory: Path
    process: subprocess.Popen[bytes]

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/v1/tts/stream"

    def error_log(self) -> str:
        path = self.directory / "error.log"
        return path.read_text() if path.exists() else ""


@contextmanager
def nginx_proxy(upstream_ports: Sequence[int]) -> Iterator[Nginx]:
    if not Path(NGINX).exists():
        raise RuntimeError(f"{NGINX} is not installed (.ci/run installs Debian's nginx)")
    directory = Path(tempfile.mkdtemp(prefix="nginx-test-"))
    port = free_port()
    site = proxy_config(
        DEPLOY_NGINX_CONF.read_text(), [f"127.0.0.1:{p}" for p in upstream_ports], f"127.0.0.1:{port}"
    )
    (directory / "stream-server.conf").write_text(site)
    (directory / "nginx.conf").write_text(_MAIN_CONF.format(dir=directory))
    process = subprocess.Popen(
        [NGINX, "-p", str(directory), "-c", str(directory / "nginx.conf"), "-e", str(directory / "error.log")],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    proxy = Nginx(port, directory, process)
    try:
        _wait_listening(proxy)
        yield proxy
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        shutil.rmtree(directory, ignore_errors=True)


def _wait_listening(proxy: Nginx) -> None:
    deadline = time.monotonic() + START_DEADLINE_S
    while True:
        try:
            socket.create_connection(("127.0.0.1", proxy.port), timeout=1).close()
            return
        except OSError:
            if proxy.process.poll() is not None or time.monotonic() > deadline:
                stderr = proxy.process.stderr.read().decode() if proxy.process.poll() is not None else ""  # type: ignore[union-attr]
                raise RuntimeError(f"nginx did not start: {stderr}{proxy.error_log()}") from None
            time.sleep(0.02)  # polling for readiness, bounded by the deadline


@dataclass
class Cluster:
    redis: RedisServer
    servers: list[ServerProcess]
    proxy: Nginx


@asynccontextmanager
async def cluster(nodes: int = 3, *options: str) -> AsyncIterator[Cluster]:
    """`nodes` server processes on one redis-server, behind nginx; `options` go to every server."""
    with redis_server() as redis:
        async with AsyncExitStack() as stack:
            servers = [
                await stack.enter_async_context(server_process("--redis-url", redis.url, *options))
                for _ in range(nodes)
            ]
            proxy = stack.enter_context(nginx_proxy([server.port for server in servers]))
            yield Cluster(redis, servers, proxy)
