"""Standard input as text chunks the moment they are written, without waiting for EOF."""

from __future__ import annotations

import asyncio
import codecs
import os
import threading
from collections.abc import AsyncIterator

READ_BYTES = 8192
_EOF = None


async def stdin_chunks(fd: int = 0, queued_chunks: int = 16) -> AsyncIterator[str]:
    """Each read of `fd` (whatever a pipe, a terminal or a file gives at once), decoded as UTF-8.

    A thread does the blocking reads: `loop.connect_read_pipe` refuses regular files (`< text.txt`).
    It is a daemon so that a failed stream can exit while the read still waits for input.
    """
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[str | None] = asyncio.Queue(queued_chunks)

    def put(item: str | None) -> None:
        # Blocks the reader while the queue is full: the text waits in the pipe, not in memory.
        asyncio.run_coroutine_threadsafe(queue.put(item), loop).result()

    def read() -> None:
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        try:
            while data := os.read(fd, READ_BYTES):
                if text := decoder.decode(data):
                    put(text)
            if tail := decoder.decode(b"", final=True):
                put(tail)
        finally:
            put(_EOF)

    threading.Thread(target=read, name="stdin-reader", daemon=True).start()
    while (chunk := await queue.get()) is not _EOF:
        yield chunk
