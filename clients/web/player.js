// Gap-free playback of a stream of decoded Float32 frames through the AudioWorklet in
// player-worklet.js, with an AnalyserNode for the level meter.
//
// Two bounded queues: the worklet holds at most WORKLET_CAPACITY_S of samples (what the audio thread
// plays from), and the main thread holds what arrived faster than that, at most MAX_QUEUED_S. The
// main thread tops the worklet up as the worklet reports what it played (credit-based flow control),
// so nothing is ever dropped for being early. The page asks the server to pace its audio
// (`max_lead_ms`), which keeps the main-thread queue to about that lead; a server that ignores it
// and sends more than MAX_QUEUED_S ahead gets an overflow error instead of unbounded memory.

const WORKLET_URL = new URL("./player-worklet.js", import.meta.url);

export const JITTER_BUFFER_S = 0.08; // start playing once this much is buffered
const WORKLET_CAPACITY_S = 1.0;
export const MAX_QUEUED_S = 12; // main thread: more than the page's largest lead (10 s) plus slack
const REPORT_EVERY_S = 0.025;

export class Player {
  constructor() {
    this.context = null;
    this.node = null;
    this.analyser = null;
    this.pending = []; // main-thread queue: [{samples, seq}] and [{marker: true, seq}]
    this.pendingSamples = 0;
    this.onEvent = () => {};
    this.epoch = 0; // bumped by every reset/flush; worklet reports of older epochs are stale
    this.#resetCounters();
  }

  #resetCounters() {
    this.inWorklet = 0; // samples posted and not yet reported played
    this.postedSamples = 0;
    this.framesScheduled = 0;
    this.streamEnded = false;
    this.endPosted = false;
    this.lastReport = null;
  }

  get sampleRate() {
    return this.context ? this.context.sampleRate : null;
  }

  // Call from a user gesture first (autoplay policy), then again with the stream's real rate.
  // The context runs at the stream's sample rate, so nothing is resampled here; a new rate means a
  // new context (a context's rate is fixed).
  async ensure(sampleRate) {
    if (this.context && this.context.sampleRate === sampleRate && this.node) {
      if (this.context.state !== "running") await this.context.resume();
      return;
    }
    if (this.context) {
      const old = this.context;
      this.context = null;
      this.node = null;
      await old.close();
    }
    const context = new AudioContext({ sampleRate, latencyHint: "interactive" });
    this.context = context;
    const resumed = context.resume();
    await context.audioWorklet.addModule(WORKLET_URL);
    if (this.context !== context) return; // replaced meanwhile
    const node = new AudioWorkletNode(context, "stream-player", {
      numberOfInputs: 0,
      numberOfOutputs: 1,
      outputChannelCount: [1],
      processorOptions: {
        prebufferSamples: Math.round(JITTER_BUFFER_S * sampleRate),
        capacitySamples: Math.round(WORKLET_CAPACITY_S * sampleRate),
        reportEverySamples: Math.round(REPORT_EVERY_S * sampleRate),
      },
    });
    const analyser = context.createAnalyser();
    analyser.fftSize = 2048;
    node.connect(analyser).connect(context.destination);
    node.port.onmessage = (event) => this.#onWorkletMessage(event.data);
    node.port.postMessage({ type: "reset", epoch: this.epoch });
    // A fresh worklet holds nothing: what the old one held is lost with its context (a rate change
    // happens before a stream's first audio, so that is nothing).
    this.inWorklet = 0;
    this.postedSamples = 0;
    this.node = node;
    this.analyser = analyser;
    await resumed;
    this.#pump();
  }

  // A new stream: empty queues and counters.
  startStream() {
    this.pending = [];
    this.pendingSamples = 0;
    this.#resetCounters();
    this.epoch += 1;
    if (this.node) this.node.port.postMessage({ type: "reset", epoch: this.epoch });
  }

  // Queue one decoded frame of segment `seq`. False when the bound would be exceeded (nothing queued).
  enqueue(samples, seq) {
    const limit = MAX_QUEUED_S * (this.sampleRate ?? 48000);
    if (this.pendingSamples + samples.length > limit) return false;
    this.pending.push({ samples, seq });
    this.pendingSamples += samples.length;
    this.#pump();
    return true;
  }

  // The frames queued so far end segment `seq` (lets the worklet tell a wait between segments
  // from an underrun inside one).
  endSegment(seq) {
    this.pending.push({ marker: true, seq });
    this.#pump();
  }

  // No more audio for this stream: play out what is queued, then report "drained".
  endOfStream() {
    this.streamEnded = true;
    this.#pump();
  }

  // Barge-in: silence now. The worklet drops its queue on its next message (within one render quantum).
  flush() {
    this.pending = [];
    this.pendingSamples = 0;
    this.inWorklet = 0;
    this.postedSamples = 0;
    this.streamEnded = false;
    this.endPosted = false;
    this.epoch += 1;
    if (this.node) this.node.port.postMessage({ type: "flush", epoch: this.epoch });
  }

  queuedMs() {
    const rate = this.sampleRate;
    if (!rate) return 0;
    return Math.round(((this.pendingSamples + this.inWorklet) / rate) * 1000);
  }

  #pump() {
    const node = this.node;
    if (!node) return;
    const capacity = WORKLET_CAPACITY_S * this.context.sampleRate;
    while (this.pending.length > 0) {
      if (this.pending[0].marker) {
        node.port.postMessage({ type: "segment_end", seq: this.pending.shift().seq });
        continue;
      }
      if (this.inWorklet + this.pending[0].samples.length > capacity) break;
      const { samples, seq } = this.pending.shift();
      this.pendingSamples -= samples.length;
      this.inWorklet += samples.length;
      this.postedSamples += samples.length;
      this.framesScheduled += 1;
      node.port.postMessage({ type: "push", samples, seq }, [samples.buffer]);
    }
    if (this.streamEnded && this.pending.length === 0 && !this.endPosted) {
      this.endPosted = true;
      node.port.postMessage({ type: "end" });
    }
  }

  #onWorkletMessage(message) {
    if (message.epoch !== this.epoch) return; // from before the last flush or reset
    if (message.type === "position" || message.type === "drained" || message.type === "flushed") {
      if (message.playedSamples !== undefined) {
        this.lastReport = message;
        this.inWorklet = Math.max(0, this.postedSamples - message.playedSamples - (message.rejectedSamples ?? 0));
      }
      this.#pump();
    }
    this.onEvent(message);
  }
}
