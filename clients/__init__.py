"""Clients of stream_server: `python` (async library and `say` CLI), `web`, `telephony`.

Each client talks to the server only over its public protocols; none of them imports
`stream_server`, except the telephony bridge's command, which logs through `stream_server.logs`
(the same JSON lines as the server; the clients are installed with it). The telephony bridge
shares the Python client's protocol messages (`clients.python.messages`) and nothing else of it.
"""
