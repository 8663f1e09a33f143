"""Cartesia's TTS API (`/tts/websocket` with contexts, `POST /tts/bytes`, `POST /tts/sse`), onto the
stream core.

request.py (a generation request → stream options, sans I/O), protocol.py (the WebSocket
conversation and its contexts, sans I/O), endpoint.py (the WebSocket I/O), rest.py (the HTTP calls)."""
