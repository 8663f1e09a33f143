"""ElevenLabs' text-to-speech API (`/v1/text-to-speech/{voice_id}/stream-input`,
`…/multi-stream-input` and `POST …/stream`), onto the stream core.

request.py (the URL's voice, model and query → stream options, sans I/O), protocol.py (the
WebSocket conversation and its contexts, sans I/O), endpoint.py (the WebSocket I/O), rest.py
(`POST /v1/text-to-speech/{voice_id}/stream`)."""
