"""Provider emulators: Starlette apps that speak the cloud providers' real wire formats.

They are the upstreams of the integration tests and of the load tests, so that nothing leaves
loopback. Each validates requests as its service documents (auth, fields, limits, voices),
streams real audio in the real format, and injects the faults users meet (see `common.Fault`).

    python -m loadtest.emulators openai|gemini|ttsai --port 9001 [--first-byte-ms 150] [--rtf 10]
        [--fault 429|500|401|stall|cutoff|other|noaudio] [--fault-times N] [--api-key KEY]
"""
