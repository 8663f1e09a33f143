// One stream over the WebSocket /v1/tts/stream (docs/protocol.md): text out as JSON messages,
// `segment` / binary audio / `segment_end` / `done` in, decoded and handed to the Player. Every
// figure the page shows, and that the browser test reads from `window.streamDemo`, is measured here.

import { ConnectionError, mintToken, streamUrl } from "./connection.js";
import { OpusFrameDecoder, PcmFrameDecoder } from "./decoders.js";

const CLOSE_NORMAL = 1000;

const GAP_LOG = 50;

// Stop was pressed before the stream was open: not an error to show.
export class StreamAborted extends Error {}

// The part of window.streamDemo that describes one stream; reset at every start.
export function freshStreamState() {
  return {
    state: "idle", // idle, connecting, streaming, finishing, done, stopping, stopped, error
    format: null,
    sampleRate: null,
    frameMs: null,
    ready: null, // the server's `ready`
    textMessagesSent: 0,
    textCharsSent: 0,
    framesReceived: 0,
    decodedFrames: 0,
    decodedMs: 0,
    framesScheduled: 0, // frames handed to the worklet
    playedMs: 0,
    playedAfterStopMs: 0, // what the worklet played after Stop flushed it: must stay 0
    maxScheduleGapMs: null, // Opus: largest mismatch between a frame's timestamp and the audio before it
    underruns: 0, // times the worklet ran dry inside a segment, after the start and before the end
    maxGapMs: 0, // the longest such silence
    waits: 0, // times it ran dry between segments (the next one was not there yet: text still coming)
    maxWaitMs: 0,
    gaps: [], // the last GAP_LOG gaps: [{kind, ms, atMs, seq}]
    rejectedSamples: 0,
    queuedMs: 0, // decoded and not yet played (main thread + worklet)
    workletQueuedMs: 0,
    firstTextAt: null, // performance.now() of the first text sent
    firstAudioAt: null, // performance.now() when the worklet played the first sample
    ttfaMs: null, // firstAudioAt - firstTextAt: what the listener waited
    serverTtfaMs: null, // `done.ttfa_ms`: the server's own part
    segments: [], // [{index, text, state: queued|playing|played|skipped, played, audioMs, decodedMs}]
    currentSegment: null, // index of the segment heard now
    stopped: false, // Stop pressed: playback silenced
    flushed: false, // the worklet confirmed its queue is empty after Stop
    cancelled: false, // the server answered `cancelled`
    droppedAfterCancel: 0, // frames that arrived between `cancel` and `cancelled`, not played
    done: null, // the server's `done`
    drained: false, // the last sample was played
    drainedAt: null, // performance.now() then
    closeCode: null,
    errors: [], // [{code, message}]
  };
}

export class StreamSession {
  constructor({ player, state, onChange }) {
    this.player = player;
    this.s = state;
    this.onChange = onChange;
    this.ws = null;
    this.decoder = null;
    this.currentSeq = null;
    this.endSent = false;
    this.dropUntilCancelled = false;
    this.retired = false;
  }

  // Connects and resolves on `ready`; rejects with a ConnectionError the page can show as it is.
  async open(params, apiKey) {
    this.#set({ state: "connecting" });
    const token = apiKey ? await mintToken(apiKey) : null;
    if (this.s.stopped) throw new StreamAborted();
    const ws = new WebSocket(streamUrl(params, token));
    ws.binaryType = "arraybuffer";
    this.ws = ws;
    this.player.startStream();
    this.player.onEvent = (message) => this.#onPlayerEvent(message);

    await new Promise((resolve, reject) => {
      let serverError = null;
      ws.onmessage = (event) => {
        if (typeof event.data !== "string") return;
        const message = JSON.parse(event.data);
        if (message.type === "ready" && !this.s.stopped) {
          this.#onReady(message);
          ws.onmessage = (e) => this.#onMessage(e.data);
          ws.onclose = (e) => this.#onClose(e);
          resolve();
        } else if (message.type === "error") {
          serverError = message;
        }
      };
      ws.onclose = (event) => {
        this.#set({ closeCode: event.code });
        if (this.s.stopped) {
          reject(new StreamAborted());
        } else if (serverError) {
          reject(new ConnectionError(`The server refused the stream: ${serverError.message} (${serverError.code}).`));
        } else {
          // A browser does not show a rejected handshake's HTTP status (401/403): all it gets is 1006.
          reject(
            new ConnectionError(
              `Could not open the stream (WebSocket closed with ${event.code}). The server may be down, ` +
                "or it requires an API key: fill in the API key field.",
            ),
          );
        }
      };
    });
    return this.player.ensure(this.s.sampleRate);
  }

  sendText(text) {
    if (!this.#canSend() || text === "") return;
    if (this.s.firstTextAt === null) this.s.firstTextAt = performance.now();
    this.ws.send(JSON.stringify({ type: "text", text }));
    this.#set({ textMessagesSent: this.s.textMessagesSent + 1, textCharsSent: this.s.textCharsSent + text.length });
  }

  end() {
    if (!this.#canSend()) return;
    this.endSent = true;
    this.ws.send(JSON.stringify({ type: "end" }));
    this.#set({ state: "finishing" });
  }

  // Barge-in: silence now, tell the server, and drop whatever audio was already on its way.
  stop() {
    if (this.s.state === "connecting") {
      this.#set({ state: "stopped", stopped: true });
      this.ws?.close();
      return;
    }
    this.player.flush();
    this.decoder?.reset();
    const open = this.ws && this.ws.readyState === WebSocket.OPEN && this.s.done === null;
    if (open) {
      this.ws.send(JSON.stringify({ type: "cancel" }));
      // Nothing more to say: the server answers `done` and closes once the cancel is through.
      if (!this.endSent) this.ws.send(JSON.stringify({ type: "end" }));
      this.endSent = true;
      this.dropUntilCancelled = true;
    }
    for (const segment of this.s.segments) {
      if (!segment.played) segment.state = "skipped";
    }
    this.#set({ state: open ? "stopping" : "stopped", stopped: true, currentSegment: null, queuedMs: 0 });
  }

  // A newer stream takes over the page: this one must not touch the shared state any more.
  retire() {
    this.retired = true;
    if (this.ws) {
      this.ws.onmessage = null;
      this.ws.onclose = null;
      if (this.ws.readyState === WebSocket.OPEN || this.ws.readyState === WebSocket.CONNECTING) this.ws.close(CLOSE_NORMAL);
    }
    this.decoder?.close();
    this.onChange = () => {};
    this.s = freshStreamState(); // a detached copy: late callbacks write here, unseen
  }

  fail(code, message) {
    this.s.errors.push({ code, message });
    this.#set({ state: "error" });
  }

  #canSend() {
    return this.ws && this.ws.readyState === WebSocket.OPEN && !this.endSent && !this.s.stopped;
  }

  #onReady(ready) {
    this.#set({ ready, format: ready.format, sampleRate: ready.sample_rate, frameMs: ready.frame_ms, state: "streaming" });
    const onFrame = (samples, seq) => this.#onDecoded(samples, seq);
    const onSegmentEnd = (seq) => {
      if (!this.s.stopped && !this.retired) this.player.endSegment(seq);
    };
    this.decoder =
      ready.format === "opus"
        ? new OpusFrameDecoder(ready.frame_ms, onFrame, onSegmentEnd, (message) => this.fail("decoder", message))
        : new PcmFrameDecoder(ready.sample_rate, onFrame, onSegmentEnd);
  }

  #onMessage(data) {
    if (typeof data !== "string") {
      if (this.dropUntilCancelled || this.s.stopped) {
        this.s.droppedAfterCancel += 1;
        return;
      }
      this.s.framesReceived += 1;
      this.decoder.decode(data, this.currentSeq);
      return;
    }
    const message = JSON.parse(data);
    switch (message.type) {
      case "segment":
        this.currentSeq = message.seq;
        this.s.segments.push({
          index: message.seq,
          text: message.text,
          state: "queued",
          played: false,
          audioMs: null,
          decodedMs: 0,
        });
        break;
      case "segment_end": {
        const segment = this.#segment(message.seq);
        if (segment) segment.audioMs = message.audio_ms;
        if (!this.dropUntilCancelled && !this.s.stopped) this.decoder.endSegment(message.seq);
        break;
      }
      case "cancelled":
        this.dropUntilCancelled = false;
        this.s.cancelled = true;
        if (this.s.state === "stopping") this.s.state = "stopped";
        break;
      case "done":
        this.s.done = message;
        this.s.serverTtfaMs = message.ttfa_ms ?? null;
        if (!this.s.stopped) this.#finish();
        break;
      case "error":
      case "warning":
        this.s.errors.push({ code: message.code, message: message.message, seq: message.seq ?? null });
        break;
    }
    this.#set({});
  }

  async #finish() {
    // The last packets may still be in the decoder: wait for them before telling the worklet the end.
    await this.decoder.flush();
    if (!this.s.stopped && !this.retired) this.player.endOfStream();
  }

  #onClose(event) {
    const patch = { closeCode: event.code };
    if (event.code !== CLOSE_NORMAL && !this.s.stopped && this.s.state !== "error") {
      this.s.errors.push({ code: "connection", message: `The connection closed unexpectedly (${event.code}).` });
      patch.state = "error";
      this.player.endOfStream(); // play what arrived
    }
    this.#set(patch);
  }

  #onDecoded(samples, seq) {
    if (this.retired) return;
    const rate = this.s.sampleRate;
    const ms = (samples.length / rate) * 1000;
    const segment = this.#segment(seq);
    if (segment) segment.decodedMs += ms;
    this.s.decodedFrames = this.decoder.framesOut;
    this.s.decodedMs += ms;
    this.s.maxScheduleGapMs = this.decoder.maxScheduleGapMs;
    if (!this.player.enqueue(samples, seq)) {
      // The server sent more than the page will hold ahead of playback: stop rather than grow.
      this.s.errors.push({ code: "buffer_overflow", message: "Audio arrived far ahead of playback; stopped." });
      this.stop();
      this.#set({ state: "error" });
      return;
    }
    this.#set({ framesScheduled: this.player.framesScheduled, queuedMs: this.player.queuedMs() });
  }

  #onPlayerEvent(message) {
    const rate = this.player.sampleRate;
    switch (message.type) {
      case "started":
        this.s.firstAudioAt = performance.now();
        if (this.s.firstTextAt !== null) this.s.ttfaMs = Math.round(this.s.firstAudioAt - this.s.firstTextAt);
        break;
      case "segment":
        this.#hear(message.seq);
        break;
      case "flushed":
        this.s.flushed = true;
        break;
      case "gap":
        this.s.gaps.push({
          kind: message.kind,
          ms: (message.samples / rate) * 1000,
          atMs: (message.atSample / rate) * 1000,
          seq: message.seq,
        });
        if (this.s.gaps.length > GAP_LOG) this.s.gaps.shift();
        break;
      case "rejected":
        this.s.errors.push({ code: "worklet_rejected", message: `The worklet refused ${message.samples} samples.` });
        break;
    }
    if (message.playedSamples !== undefined && this.s.stopped) {
      // After a flush the worklet counts afresh: anything played now is audio that leaked past Stop.
      this.s.playedAfterStopMs = (message.playedSamples / rate) * 1000;
      this.s.workletQueuedMs = (message.queuedSamples / rate) * 1000;
    } else if (message.playedSamples !== undefined) {
      this.s.playedMs = (message.playedSamples / rate) * 1000;
      this.s.workletQueuedMs = (message.queuedSamples / rate) * 1000;
      this.s.underruns = message.underruns;
      this.s.maxGapMs = (message.maxGapSamples / rate) * 1000;
      this.s.waits = message.waits;
      this.s.maxWaitMs = (message.maxWaitSamples / rate) * 1000;
      this.s.rejectedSamples = message.rejectedSamples;
      this.s.framesScheduled = this.player.framesScheduled;
      this.s.queuedMs = this.player.queuedMs();
    }
    if (message.type === "drained") {
      this.#hear(null);
      this.s.drained = true;
      this.s.drainedAt = performance.now();
      if (this.s.state === "finishing" || this.s.state === "streaming") this.s.state = "done";
    }
    this.#set({});
  }

  // The worklet moved on to segment `seq` (null: nothing more): the ones before it were heard.
  #hear(seq) {
    for (const segment of this.s.segments) {
      if (seq !== null && segment.index === seq) {
        segment.state = "playing";
      } else if (segment.state === "playing" || (seq === null && segment.decodedMs > 0 && !this.s.stopped)) {
        segment.state = "played";
        segment.played = true;
      }
    }
    this.s.currentSegment = seq;
  }

  #segment(seq) {
    for (let i = this.s.segments.length - 1; i >= 0; i--) {
      if (this.s.segments[i].index === seq) return this.s.segments[i];
    }
    return null;
  }

  #set(patch) {
    Object.assign(this.s, patch);
    this.onChange();
  }
}
