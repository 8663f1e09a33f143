"""Other vendors' streaming TTS protocols, each an adapter onto the same stream core: a sans-I/O
module per protocol (its messages in, stream commands out; the stream's outputs in, its messages
out) and a thin socket or HTTP side. `websocket.py` holds what their WebSocket sides share."""
