"""Wyoming (Home Assistant's protocol for local speech services): the listener, a thin adapter
onto the stream core, and the sans-I/O parts it drives (framing, conversation, voices, endpoint)."""
