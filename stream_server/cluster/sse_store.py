"""SSE sessions' state in Redis: the I/O half of `sse_wire.py`.

Keys (named by `hashed(session id)`, see `SessionKeys`), each with a TTL or a cap:
- `meta` (hash): whose session it is (`hashed(key name)`, `-` without keys), its config, the next
  text `seq`, characters accepted and already synthesized, what readers took (`delivered`), how
  far the spoken text reaches (`checkpoint`, `spoken`), `ended`/`finished`. TTL `--sse-idle-s`,
  renewed by every text request and by connected readers: an idle session expires as it does on
  one server.
- `text` (stream): the accepted text commands, in order. Same TTL; capped at `MAX_TEXT_ENTRIES`
  entries and `--max-pending-chars` characters not yet synthesized (requests past them get
  `413 pending_text_limit`); the owner trims what is spoken.
- `events` (stream, entry id = SSE event id): what the owner rendered. TTL `--sse-idle-s` from the
  last write or read; trimmed by the owner to `--sse-resume-ms` of delivered audio, and capped at
  `MAX_EVENT_ENTRIES` entries whatever happens.
- `lease` (string): the owner node's id, TTL `LEASE_S`, renewed while it runs the stream.
"""

from __future__ import annotations

from dataclasses import dataclass

from redis.asyncio import Redis
from redis.commands.core import AsyncScript
from redis.exceptions import ResponseError

from ..protocol.sse import SseEvent
from .link import RedisLink
from .sse_wire import (
    END_FIELDS,
    Checkpoint,
    SessionKeys,
    TextCommand,
    decode_checkpoint,
    encode_checkpoint,
    encode_command,
    event_fields,
    event_of,
)

LEASE_S = 3.0
"""A dead owner's sessions are taken over this long after its last renewal, at most."""
RENEW_S = 1.0
MAX_TEXT_ENTRIES = 4096
MAX_EVENT_ENTRIES = 8192
"""Twice the resume window's event bound (event_log.MAX_LOG_EVENTS): room for events not yet read."""

_APPEND = """
local meta, text = KEYS[1], KEYS[2]
if redis.call('EXISTS', meta) == 0 or redis.call('HGET', meta, 'client') ~= ARGV[1] then return {'unknown'} end
local cancel = ARGV[6] == '1'
if not cancel then
  if ARGV[2] ~= '' then
    local expected = tonumber(redis.call('HGET', meta, 'next_seq') or '0')
    local seq = tonumber(ARGV[2])
    if seq < expected then return {'duplicate'} end
    if seq > expected then return {'out_of_order', tostring(expected)} end
  end
  if redis.call('HGET', meta, 'ended') == '1' then return {'ended'} end
  local waiting = tonumber(redis.call('HGET', meta, 'accepted') or '0') - tonumber(redis.call('HGET', meta, 'cut') or '0')
  if waiting + tonumber(ARGV[4]) > tonumber(ARGV[5]) then return {'pending', tostring(waiting)} end
  if redis.call('XLEN', text) >= tonumber(ARGV[8]) then return {'pending', tostring(waiting)} end
end
local accepted = redis.call('HINCRBY', meta, 'accepted', cancel and 0 or tonumber(ARGV[4]))
redis.call('XADD', text, '*', 'c', ARGV[3], 'a', accepted)
if ARGV[2] ~= '' then redis.call('HSET', meta, 'next_seq', tonumber(ARGV[2]) + 1) end
if ARGV[7] == '1' then redis.call('HSET', meta, 'ended', '1') end
for i = 1, #KEYS do redis.call('PEXPIRE', KEYS[i], ARGV[9]) end
return {'ok', tostring(accepted - tonumber(redis.call('HGET', meta, 'cut') or '0'))}
"""

_TOUCH = """
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
for _, i in ipairs({1, 2, 4}) do redis.call('PEXPIRE', KEYS[i], ARGV[1]) end
local delivered = tonumber(redis.call('HGET', KEYS[1], 'delivered') or '0')
if ARGV[2] ~= '' and tonumber(ARGV[2]) > delivered then
  delivered = tonumber(ARGV[2])
  redis.call('HSET', KEYS[1], 'delivered', delivered)
end
return {tostring(delivered), redis.call('HGET', KEYS[1], 'finished') or '0', redis.call('EXISTS', KEYS[3])}
"""

_TAKE_LEASE = """
if redis.call('EXISTS', KEYS[1]) == 0 or redis.call('HGET', KEYS[1], 'finished') == '1' then return 0 end
if redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end
return 0
"""

_KEEP_LEASE = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local holder = redis.call('GET', KEYS[2])
if holder == ARGV[1] then redis.call('PEXPIRE', KEYS[2], ARGV[2]) return 1 end
-- Expired while Redis was away (nobody took over meanwhile): still ours.
if not holder and redis.call('HGET', KEYS[1], 'finished') ~= '1' then
  redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
"""

# Every write of the owner is fenced by its lease (KEYS[1] meta, KEYS[2] lease, ARGV[1] the node):
# a node that lost the session (an outage longer than the lease, and another node took it over)
# writes nothing more, and nothing written recreates a session that expired (no key without TTL).
_FENCE = """
if redis.call('EXISTS', KEYS[1]) == 0 or redis.call('GET', KEYS[2]) ~= ARGV[1] then return 0 end
"""

_ADD_EVENT = _FENCE + """
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[4], ARGV[2], unpack(ARGV, 5))
redis.call('PEXPIRE', KEYS[3], ARGV[3])
return 1
"""

_PROGRESS = _FENCE + """
redis.call('HSET', KEYS[1], 'spoken', ARGV[2], 'cut', ARGV[3])
if ARGV[4] ~= '' then
  redis.call('HSET', KEYS[1], 'checkpoint', ARGV[4])
  redis.call('XTRIM', KEYS[4], 'MINID', ARGV[5])
end
return 1
"""

_FINISH = _FENCE + """
redis.call('XADD', KEYS[3], ARGV[2], unpack(ARGV, 4))
redis.call('PEXPIRE', KEYS[3], ARGV[3])
redis.call('HSET', KEYS[1], 'finished', 1, 'ended', 1)
redis.call('DEL', KEYS[4], KEYS[2])
return 1
"""

_RELEASE_LEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 1
"""


class LeaseLost(Exception):
    """The owner's write was refused: another node holds the session's lease now, or the session
    expired. The owner stops without a word; the session goes on where the lease is."""


@dataclass(frozen=True, slots=True)
class SessionFacts:
    """What a node needs to run (take over) a session's stream."""

    client: str
    config: bytes
    checkpoint: Checkpoint
    spoken: int
    delivered: int
    last_event: int


@dataclass(frozen=True, slots=True)
class Accepted:
    outcome: str
    """ok, duplicate, out_of_order, ended, pending, unknown."""
    number: int = 0
    """ok: characters not yet synthesized; out_of_order: the expected seq; pending: characters waiting."""


class SessionStore:
    """The Redis commands of the cluster's SSE sessions. Every method raises `RedisUnavailable`."""

    def __init__(self, link: RedisLink, idle_s: float) -> None:
        self._link = link
        self._ttl_ms = max(1, int(idle_s * 1000))
        client = link.client
        self._append = client.register_script(_APPEND)
        self._touch = client.register_script(_TOUCH)
        self._take = client.register_script(_TAKE_LEASE)
        self._keep = client.register_script(_KEEP_LEASE)
        self._release = client.register_script(_RELEASE_LEASE)
        self._add_event = client.register_script(_ADD_EVENT)
        self._progress = client.register_script(_PROGRESS)
        self._finish = client.register_script(_FINISH)

    async def create(self, keys: SessionKeys, client: str, config: bytes, node: str) -> None:
        async def create(r: Redis) -> None:
            async with r.pipeline(transaction=True) as pipe:
                pipe.hset(keys.meta, mapping={"client": client, "config": config, "next_seq": 0})
                pipe.pexpire(keys.meta, self._ttl_ms)
                pipe.set(keys.lease, node, px=int(LEASE_S * 1000))
                await pipe.execute()

        await self._link.call(create)

    async def append(
        self, keys: SessionKeys, client: str, command: TextCommand, seq: int | None, max_pending: int
    ) -> Accepted:
        args = [
            client, "" if seq is None else seq, encode_command(command), len(command.text), max_pending,
            int(command.cancel), int(command.end), MAX_TEXT_ENTRIES, self._ttl_ms,
        ]  # fmt: skip
        keys_ = [keys.meta, keys.text, keys.events]
        answer = await self._link.call(lambda r: self._append(keys=keys_, args=args, client=r))
        outcome = answer[0].decode()
        return Accepted(outcome, int(answer[1]) if len(answer) > 1 else 0)

    async def facts(self, keys: SessionKeys) -> SessionFacts | None:
        async def read(r: Redis) -> tuple[list[bytes | None], int]:
            fields = await r.hmget(keys.meta, ["client", "config", "checkpoint", "spoken", "delivered"])
            try:
                info = await r.xinfo_stream(keys.events)
                last = int(info["last-generated-id"].split(b"-")[0])
            except ResponseError:  # no such key: no events yet (a lost connection is an outage)
                last = 0
            return fields, last

        (client, config, checkpoint, spoken, delivered), last = await self._link.call(read)
        if client is None or config is None:
            return None
        return SessionFacts(
            client.decode(), config, decode_checkpoint(checkpoint), int(spoken or 0), int(delivered or 0), last
        )

    async def client_of(self, keys: SessionKeys) -> str | None:
        value = await self._link.call(lambda r: r.hget(keys.meta, "client"))
        return None if value is None else value.decode()

    # -- the owner --------------------------------------------------------------------------------

    async def take_lease(self, keys: SessionKeys, node: str) -> bool:
        args = [node, int(LEASE_S * 1000)]
        return bool(await self._link.call(lambda r: self._take(keys=[keys.meta, keys.lease], args=args, client=r)))

    async def keep_lease(self, keys: SessionKeys, node: str) -> bool:
        """False when the session is gone (expired) or another node holds its lease."""
        args = [node, int(LEASE_S * 1000)]
        return bool(await self._link.call(lambda r: self._keep(keys=[keys.meta, keys.lease], args=args, client=r)))

    async def read_text(self, keys: SessionKeys, after: str, block_ms: int) -> list[tuple[str, bytes, int]]:
        """Commands after `after`: (entry id, command, characters the session accepted up to it)."""
        answer = await self._link.call(lambda r: r.xread({keys.text: after}, count=64, block=block_ms))
        if not answer:
            return []
        return [(entry_id.decode(), fields[b"c"], int(fields[b"a"])) for entry_id, fields in answer[0][1]]

    async def add_event(self, keys: SessionKeys, event: SseEvent, node: str) -> None:
        fields = [item for pair in event_fields(event).items() for item in pair]
        args = [node, f"{event.id}-0", self._ttl_ms, MAX_EVENT_ENTRIES, *fields]
        await self._fenced(self._add_event, keys, args)

    async def delivered(self, keys: SessionKeys) -> int:
        return int(await self._link.call(lambda r: r.hget(keys.meta, "delivered")) or 0)

    async def trim_events(self, keys: SessionKeys, first_kept: int) -> None:
        await self._link.call(lambda r: r.xtrim(keys.events, minid=f"{first_kept}-0"))

    async def progress(
        self, keys: SessionKeys, node: str, spoken: int, cut_chars: int, checkpoint: Checkpoint | None
    ) -> None:
        """`spoken` segments are rendered in full, all but `cut_chars` of the characters accepted
        are synthesized (`accepted - cut` is what the text cap counts); the
        text up to `checkpoint` is no longer needed for a replay."""
        encoded, first_kept = b"", ""
        if checkpoint is not None:
            encoded = encode_checkpoint(checkpoint)
            millis, _, number = checkpoint.after.partition("-")
            first_kept = f"{millis}-{int(number) + 1}"
        await self._fenced(self._progress, keys, [node, spoken, cut_chars, encoded, first_kept])

    async def finish(self, keys: SessionKeys, last_event: int, node: str) -> None:
        """The stream is over: no more text, readers end after its last event, nobody takes over."""
        fields = [item for pair in END_FIELDS.items() for item in pair]
        await self._fenced(self._finish, keys, [node, f"{last_event + 1}-0", self._ttl_ms, *fields])

    async def _fenced(self, script: AsyncScript, keys: SessionKeys, args: list[object]) -> None:
        """Runs an owner's write; raises `LeaseLost` when the node no longer owns the session."""
        keys_ = [keys.meta, keys.lease, keys.events, keys.text]
        written = await self._link.call(lambda r: script(keys=keys_, args=args, client=r))
        if not written:
            raise LeaseLost()

    async def release(self, keys: SessionKeys, node: str) -> None:
        await self._link.call(lambda r: self._release(keys=[keys.lease], args=[node], client=r))

    # -- readers ----------------------------------------------------------------------------------

    async def read_events(self, keys: SessionKeys, after: int, block_ms: int) -> list[SseEvent | None]:
        """Events after `after` (None: the end marker), waiting up to `block_ms` for the first."""
        answer = await self._link.call(lambda r: r.xread({keys.events: f"{after}-0"}, count=64, block=block_ms))
        if not answer:
            return []
        return [event_of(entry_id, fields) for entry_id, fields in answer[0][1]]

    async def touch(self, keys: SessionKeys, delivered: int | None) -> tuple[int, bool, bool] | None:
        """A reader keeps the session alive and says what it took: (delivered, finished, leased),
        or None when the session is gone."""
        # The lease (third) is only looked at: it keeps its own, short, TTL.
        keys_ = [keys.meta, keys.text, keys.lease, keys.events]
        args = [self._ttl_ms, "" if delivered is None else delivered]
        answer = await self._link.call(lambda r: self._touch(keys=keys_, args=args, client=r))
        if not answer:
            return None
        return int(answer[0]), answer[1] == b"1", bool(answer[2])
