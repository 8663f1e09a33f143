"""Bytes ↔ messages. Decoding errors become `ProtocolError`s with a precise, stable code."""

from __future__ import annotations

import msgspec

from .errors import ErrorCode, ProtocolError
from .messages import ClientMessage, ServerMessage

_decoder = msgspec.json.Decoder(ClientMessage)
_encoder = msgspec.json.Encoder()


def decode_client_message(data: str | bytes) -> ClientMessage:
    try:
        return _decoder.decode(data)
    except msgspec.DecodeError as exc:
        # msgspec's messages already say what is wrong and where (e.g. "Expected `str`, got
        # `int` - at `$.text`", "Invalid value 'speak' - at `$.type`"); keep them.
        raise ProtocolError(ErrorCode.BAD_MESSAGE, str(exc)) from None
    except RecursionError:
        # msgspec skips a value that comes before the `type` tag recursively: ~1000 levels of
        # nesting there (2 kB) exhaust the stack instead of raising a DecodeError.
        raise ProtocolError(ErrorCode.BAD_MESSAGE, TOO_DEEP) from None


TOO_DEEP = "JSON is nested too deeply"


def encode_server_message(message: ServerMessage) -> str:
    return _encoder.encode(message).decode()
