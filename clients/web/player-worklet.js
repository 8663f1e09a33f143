// The playback end of the demo: an AudioWorkletProcessor that plays a bounded queue of Float32
// samples, pulled by the audio clock one render quantum at a time, so segments join without gaps
// (nothing is chained on `onended`). It starts only after a small jitter buffer has filled, and it
// reports back what it plays: the segment heard now, the samples played, and every time it ran dry.
//
// A dry spell after the first sample and before the stream's end is a gap the listener hears. Gaps
// are told apart by where they fall: inside a segment (its next frame was late: an underrun of the
// jitter buffer) or between segments (the next segment was not there yet: the text had not arrived,
// as with an LLM that writes slower than the voice speaks, or its synthesis was late). A dry spell
// that the end of the stream closes is not a gap: nothing followed it.
//
// Messages in (main thread → worklet):
//   {type: "push", samples: Float32Array, seq}   one decoded frame of segment `seq` (transferred)
//   {type: "segment_end", seq}                   the frames pushed so far end segment `seq`
//   {type: "end"}                                no more audio for this stream: play out what is queued
//   {type: "flush", epoch}                       barge-in: drop everything queued, silence at once
//   {type: "reset", epoch}                       a new stream: as flush, without a reply
// Every message out carries the epoch of the last flush/reset, so stale reports can be told apart.
// Messages out:
//   {type: "started", time}                      the first sample of the stream is being played
//   {type: "segment", seq}                       the segment heard now changed
//   {type: "position", ...}                      periodic counters (see #report)
//   {type: "gap", kind, samples, atSample, seq}  a dry spell ended: "underrun" or "wait"
//   {type: "drained", ...}                       after "end", the last queued sample was played
//   {type: "flushed", ...}                       the queue is empty after a "flush"
//   {type: "rejected", samples}                  a push over capacity (the main thread must not do that)

class StreamPlayerProcessor extends AudioWorkletProcessor {
  constructor(options) {
    super();
    const { prebufferSamples, capacitySamples, reportEverySamples } = options.processorOptions;
    this.prebufferSamples = prebufferSamples;
    this.capacitySamples = capacitySamples;
    this.reportEverySamples = reportEverySamples;
    this.epoch = 0; // which stream (or which stretch after a flush) the reports belong to
    this.#resetStream();
    this.port.onmessage = (event) => this.#onMessage(event.data);
  }

  #resetStream() {
    this.chunks = []; // [{samples: Float32Array, seq}] or [{marker: true, seq}], oldest first
    this.offset = 0; // read position inside chunks[0]
    this.queuedSamples = 0;
    this.buffering = true; // filling the jitter buffer, output silent
    this.ended = false;
    this.started = false;
    this.drainedSent = false;
    this.playedSamples = 0;
    this.betweenSegments = false; // the last thing played was the end of a segment
    this.gapSamples = 0; // the dry spell in progress
    this.gapBetweenSegments = false;
    this.underruns = 0; // gaps inside a segment
    this.maxGapSamples = 0;
    this.waits = 0; // gaps between segments
    this.maxWaitSamples = 0;
    this.rejectedSamples = 0;
    this.currentSeq = null;
    this.sinceReport = 0;
  }

  #onMessage(message) {
    switch (message.type) {
      case "push": {
        const length = message.samples.length;
        if (this.queuedSamples + length > this.capacitySamples) {
          // Bounded: say so rather than grow or drop silently.
          this.rejectedSamples += length;
          this.port.postMessage({ type: "rejected", epoch: this.epoch, samples: length });
          return;
        }
        this.chunks.push({ samples: message.samples, seq: message.seq });
        this.queuedSamples += length;
        break;
      }
      case "segment_end":
        this.chunks.push({ marker: true, seq: message.seq });
        break;
      case "end":
        this.ended = true;
        break;
      case "flush":
        this.epoch = message.epoch;
        this.#resetStream();
        this.#report("flushed");
        break;
      case "reset":
        this.epoch = message.epoch;
        this.#resetStream();
        break;
    }
  }

  process(_inputs, outputs) {
    const channels = outputs[0];
    const out = channels[0];
    const frames = out.length;
    let written = 0;

    this.#passMarkers();
    if (this.buffering && (this.queuedSamples >= this.prebufferSamples || (this.ended && this.queuedSamples > 0))) {
      this.buffering = false;
      if (!this.started) {
        this.started = true;
        this.port.postMessage({ type: "started", epoch: this.epoch, time: currentTime });
      }
    }

    if (!this.buffering) {
      while (written < frames && this.chunks.length > 0) {
        const chunk = this.chunks[0];
        if (chunk.seq !== this.currentSeq) {
          this.currentSeq = chunk.seq;
          this.port.postMessage({ type: "segment", epoch: this.epoch, seq: chunk.seq });
        }
        const count = Math.min(frames - written, chunk.samples.length - this.offset);
        out.set(chunk.samples.subarray(this.offset, this.offset + count), written);
        written += count;
        this.offset += count;
        if (this.offset === chunk.samples.length) {
          this.chunks.shift();
          this.offset = 0;
        }
        this.betweenSegments = false;
        this.#passMarkers();
      }
      this.queuedSamples -= written;
      this.playedSamples += written;
    }
    out.fill(0, written);
    for (let c = 1; c < channels.length; c++) channels[c].set(out);

    this.#account(written, frames - written);
    this.sinceReport += frames;
    if (this.sinceReport >= this.reportEverySamples) this.#report("position");
    return true;
  }

  // Segment-end markers at the head of the queue: the audio before them has been played.
  #passMarkers() {
    while (this.chunks.length > 0 && this.chunks[0].marker) {
      this.chunks.shift();
      this.betweenSegments = true;
    }
  }

  #account(written, missing) {
    if (!this.started) return;
    if (written > 0 && this.gapSamples > 0) this.#closeGap();
    if (missing > 0 && !(this.ended && this.queuedSamples === 0)) {
      this.gapSamples += missing;
      this.gapBetweenSegments ||= this.betweenSegments;
      // Ran dry mid-stream: refill the jitter buffer before going on, rather than stutter.
      this.buffering = true;
    }
    if (this.ended && this.queuedSamples === 0 && !this.drainedSent) {
      this.gapSamples = 0; // closed by the end of the stream: nothing followed it
      this.drainedSent = true;
      this.currentSeq = null;
      this.#report("drained");
    }
  }

  #closeGap() {
    this.port.postMessage({
      type: "gap",
      epoch: this.epoch,
      kind: this.gapBetweenSegments ? "wait" : "underrun",
      samples: this.gapSamples,
      atSample: this.playedSamples, // where in the stream's audio it fell
      seq: this.currentSeq, // the segment played before it
    });
    if (this.gapBetweenSegments) {
      this.waits += 1;
      this.maxWaitSamples = Math.max(this.maxWaitSamples, this.gapSamples);
    } else {
      this.underruns += 1;
      this.maxGapSamples = Math.max(this.maxGapSamples, this.gapSamples);
    }
    this.gapSamples = 0;
    this.gapBetweenSegments = false;
  }

  #report(type) {
    this.sinceReport = 0;
    this.port.postMessage({
      type,
      epoch: this.epoch,
      playedSamples: this.playedSamples,
      queuedSamples: this.queuedSamples,
      underruns: this.underruns,
      maxGapSamples: this.maxGapSamples,
      waits: this.waits,
      maxWaitSamples: this.maxWaitSamples,
      rejectedSamples: this.rejectedSamples,
      buffering: this.buffering,
      seq: this.currentSeq,
    });
  }
}

registerProcessor("stream-player", StreamPlayerProcessor);
