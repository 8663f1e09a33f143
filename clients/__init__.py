"""Clients of stream_server: `python` (async library and `say` CLI), `web`, `telephony`.

Each client stands on its own and talks to the server only over its public protocols; none of
them imports `stream_server`.
"""
