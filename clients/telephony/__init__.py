"""Telephony bridge: Twilio Media Streams on one side, stream_server's WebSocket protocol on the other.

Why a standalone process (`python -m clients.telephony`) rather than a `/v1/telephony/twilio`
endpoint inside the speech server:

- Twilio's protocol and per-call state (callSid/streamSid, marks, what the caller heard) stay out
  of the speech server, which keeps one concern: text in, audio out.
- It uses only the server's public WebSocket protocol (one stream per call, `format=mulaw`,
  8000 Hz, 20 ms frames), so it works against any deployment of the server, local or remote,
  with or without API keys.
- It scales and deploys next to the telephony edge (a public `wss://` host Twilio can reach, behind
  a TLS proxy), while the speech servers stay private.

Per call: Twilio connects to `/twilio`; the bridge opens one server stream; the bot posts text to
`/calls/{callSid}/text`; the bridge plays the audio as 160-byte μ-law `media` frames paced a small
lead (`--lead-ms`, 200) ahead of Twilio's playback, sends a `mark` after each segment and counts
a segment heard when Twilio echoes it. `/calls/{callSid}/barge-in` sends `clear`, cancels the
server's output and reports what was heard fully, partly (estimated from the pacing clock) or not
at all. With a Twilio auth token, only upgrades bearing Twilio's `X-Twilio-Signature` get a call
(`twilio_auth.py`, `twilio_signature.py`). See `app.py` for the HTTP API, `twilio_peer.py` for an
emulated Twilio to try it with.
"""

from .app import create_bridge_app
from .options import BridgeOptions

__all__ = ["BridgeOptions", "create_bridge_app"]
