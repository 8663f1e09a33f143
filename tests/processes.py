"""A real server process (`python -m stream_server`) for tests that signal it or read its log."""

from __future__ import annotations

import asyncio
import json
import re
import resource
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

RUNNING = re.compile(r"Uvicorn running on http://127\.0\.0\.1:(\d+)")


@dataclass
class ServerProcess:
    process: asyncio.subprocess.Process
    port: int = 0
    lines: list[str] = field(default_factory=list)

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/v1/tts/stream"

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> list[dict[str, object]]:
        return [json.loads(line) for line in self.lines if line.startswith("{")]


@asynccontextmanager
async def server_process(*options: str, max_files: int | None = None) -> AsyncIterator[ServerProcess]:
    """`max_files`: the process's descriptor limit (RLIMIT_NOFILE), to run it out of them."""

    def limit_files() -> None:
        if max_files is not None:
            resource.setrlimit(resource.RLIMIT_NOFILE, (max_files, max_files))

    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "stream_server", "--providers", "tone", "--provider", "tone", "--port", "0",
        "--max-lead-ms", "0", *options,
        stderr=asyncio.subprocess.PIPE,
        preexec_fn=limit_files if max_files is not None else None,
    )
    server = ServerProcess(process)
    started = asyncio.get_running_loop().create_future()

    async def read_log() -> None:
        assert process.stderr is not None
        async for raw in process.stderr:
            line = raw.decode()
            server.lines.append(line)
            if (match := RUNNING.search(line)) and not started.done():
                started.set_result(int(match.group(1)))
        if not started.done():
            started.set_exception(RuntimeError("the server exited before listening:\n" + "".join(server.lines)))

    reader = asyncio.create_task(read_log())
    try:
        server.port = await asyncio.wait_for(started, 30)
        yield server
    finally:
        if process.returncode is None:
            process.kill()
        await process.wait()
        await reader
