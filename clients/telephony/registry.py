"""The calls in progress, found by Twilio's `callSid` or by its `streamSid`."""

from __future__ import annotations

from .call import Call


class CallRegistry:
    def __init__(self, max_calls: int) -> None:
        self.max_calls = max_calls
        self._by_sid: dict[str, Call] = {}
        self._calls: set[Call] = set()

    def __len__(self) -> int:
        return len(self._calls)

    def full(self) -> bool:
        return len(self._calls) >= self.max_calls

    def add(self, call: Call) -> None:
        # A call can start a second stream (after a <Stream> ends): its callSid then names the newest.
        self._calls.add(call)
        self._by_sid[call.call_sid] = call
        self._by_sid[call.stream_sid] = call

    def remove(self, call: Call) -> None:
        self._calls.discard(call)
        for sid in (call.call_sid, call.stream_sid):
            if self._by_sid.get(sid) is call:
                del self._by_sid[sid]

    def find(self, sid: str) -> Call | None:
        """By callSid (`CA…`) or streamSid (`MZ…`): Twilio's prefixes keep the two apart."""
        return self._by_sid.get(sid)

    def has_stream(self, stream_sid: str) -> bool:
        call = self._by_sid.get(stream_sid)
        return call is not None and call.stream_sid == stream_sid
