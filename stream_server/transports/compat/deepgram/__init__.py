"""Deepgram's Aura TTS API (`/v1/speak`, WebSocket and REST), onto the stream core.

request.py (query parameters and `model` → stream options, sans I/O), protocol.py (the
WebSocket conversation, sans I/O), endpoint.py (the WebSocket I/O), rest.py (`POST /v1/speak`)."""
