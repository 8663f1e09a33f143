"""One stream's life between the transport and the providers, independent of the transport.

`core` (the rules, sans I/O) → `runner` (the async side: delivery, synthesis epochs, deadlines) →
`synthesis` (provider jobs into the audio pipeline); `factory` builds streams; `options` resolves
what a client asked for; `outputs` are what every transport renders.
"""

from .core import StreamCore
from .factory import StreamFactory
from .options import StreamOptions, config_from_query, ready_message, resolve_options
from .outputs import Output, Relay, Stopped
from .runner import ClientGone, Outcome, Send, Stream
from .synthesis import SynthesisResources

__all__ = [
    "ClientGone",
    "Outcome",
    "Output",
    "Relay",
    "Send",
    "Stopped",
    "Stream",
    "StreamCore",
    "StreamFactory",
    "StreamOptions",
    "SynthesisResources",
    "config_from_query",
    "ready_message",
    "resolve_options",
]
