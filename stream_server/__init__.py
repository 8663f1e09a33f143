"""stream_server: a real-time streaming speech server.

Data flow, one package each: transports → session → text (segmenter) → providers → audio
(resampling, encoding) → buffer (ring) → transport.
"""

__version__ = "0.1.0"
