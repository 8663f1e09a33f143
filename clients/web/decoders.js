// Binary audio frames → Float32 samples, one decoder per stream.
//
// `opus`: each frame is one raw Opus packet (48 kHz), decoded by WebCodecs' AudioDecoder.
// `pcm`: each frame is s16le mono, converted here.
// Both call onFrame(samples, seq) in order, and onSegmentEnd(seq) once the last frame of a segment
// (the frames before `endSegment(seq)` was called) is out. The Opus decoder also checks the stream's continuity:
// each packet is stamped with where it starts (packet count × frame_ms), and each decoded frame must
// start exactly where the previous one ended (its timestamp vs the samples before it), so a lost
// packet or a short decode shows as `maxScheduleGapMs` > 0. PCM has no timestamps to compare: its
// samples are checked against the server's `segment_end.audio_ms` instead (see session.js).

export const PLAYABLE_FORMATS = ["opus", "pcm"];

export async function opusSupported() {
  if (typeof AudioDecoder === "undefined" || typeof EncodedAudioChunk === "undefined") return false;
  try {
    const { supported } = await AudioDecoder.isConfigSupported(OPUS_CONFIG);
    return Boolean(supported);
  } catch {
    return false;
  }
}

const OPUS_CONFIG = { codec: "opus", sampleRate: 48000, numberOfChannels: 1 };

class Continuity {
  constructor(sampleRate) {
    this.sampleRate = sampleRate;
    this.expectedUs = null;
    this.maxGapMs = 0;
  }

  // A decoded frame of `length` samples that starts at `timestampUs`.
  note(timestampUs, length) {
    if (this.expectedUs !== null) {
      this.maxGapMs = Math.max(this.maxGapMs, Math.abs(timestampUs - this.expectedUs) / 1000);
    }
    this.expectedUs = timestampUs + (length / this.sampleRate) * 1e6;
  }

  restart() {
    this.expectedUs = null;
  }
}

export class OpusFrameDecoder {
  constructor(frameMs, onFrame, onSegmentEnd, onError) {
    this.frameMs = frameMs;
    this.onFrame = onFrame;
    this.onSegmentEnd = onSegmentEnd;
    this.segmentEnds = new Map(); // last packet number of a segment → the segment
    this.onError = onError;
    this.sampleRate = 48000;
    this.framesIn = 0;
    this.framesOut = 0;
    this.samplesOut = 0;
    this.continuity = new Continuity(this.sampleRate);
    this.seqByPacket = new Map(); // packet number → its segment, for the packets in flight
    this.#open();
  }

  #open() {
    this.nextTimestampUs = 0;
    this.decoder = new AudioDecoder({
      output: (data) => this.#output(data),
      error: (error) => this.onError(`Opus decoder: ${error.message}`),
    });
    this.decoder.configure(OPUS_CONFIG);
  }

  decode(buffer, seq) {
    if (this.decoder.state !== "configured") return;
    const timestamp = this.nextTimestampUs;
    this.nextTimestampUs += this.frameMs * 1000;
    this.seqByPacket.set(this.#packetAt(timestamp), seq);
    this.framesIn += 1;
    // Every raw packet decodes on its own: each is a key chunk.
    this.decoder.decode(new EncodedAudioChunk({ type: "key", timestamp, data: buffer }));
  }

  #output(data) {
    const samples = new Float32Array(data.numberOfFrames);
    data.copyTo(samples, { planeIndex: 0, format: "f32-planar" });
    const packet = this.#packetAt(data.timestamp);
    const seq = this.seqByPacket.get(packet) ?? null;
    this.seqByPacket.delete(packet);
    this.continuity.note(data.timestamp, data.numberOfFrames);
    data.close();
    this.framesOut += 1;
    this.samplesOut += samples.length;
    this.onFrame(samples, seq);
    const ended = this.segmentEnds.get(packet);
    if (ended !== undefined) {
      this.segmentEnds.delete(packet);
      this.onSegmentEnd(ended);
    }
  }

  endSegment(seq) {
    if (this.framesIn === this.framesOut) this.onSegmentEnd(seq);
    else this.segmentEnds.set(this.#packetAt(this.nextTimestampUs) - 1, seq);
  }

  // The decoder recomputes output timestamps from its sample count (they may differ by a
  // microsecond of rounding from the input's), so packets are matched by number, not timestamp.
  #packetAt(timestampUs) {
    return Math.round(timestampUs / (this.frameMs * 1000));
  }

  // Resolves when every packet given so far has come out.
  async flush() {
    if (this.decoder.state === "configured") await this.decoder.flush();
  }

  // Barge-in: drop packets in flight and start afresh, as the server's encoder does after `cancelled`.
  reset() {
    if (this.decoder.state !== "closed") this.decoder.reset();
    this.seqByPacket.clear();
    this.segmentEnds.clear();
    this.framesIn = this.framesOut;
    this.nextTimestampUs = 0;
    this.continuity.restart();
    this.decoder.configure(OPUS_CONFIG);
  }

  close() {
    if (this.decoder.state !== "closed") this.decoder.close();
  }

  get maxScheduleGapMs() {
    return this.continuity.maxGapMs;
  }
}

export class PcmFrameDecoder {
  constructor(sampleRate, onFrame, onSegmentEnd) {
    this.sampleRate = sampleRate;
    this.onFrame = onFrame;
    this.onSegmentEnd = onSegmentEnd;
    this.framesIn = 0;
    this.framesOut = 0;
    this.samplesOut = 0;
  }

  decode(buffer, seq) {
    this.framesIn += 1;
    const view = new DataView(buffer);
    const samples = new Float32Array(buffer.byteLength >> 1);
    for (let i = 0; i < samples.length; i++) samples[i] = view.getInt16(2 * i, true) / 32768;
    this.framesOut += 1;
    this.samplesOut += samples.length;
    this.onFrame(samples, seq);
  }

  endSegment(seq) {
    this.onSegmentEnd(seq);
  }

  async flush() {}

  reset() {}

  close() {}

  get maxScheduleGapMs() {
    return null;
  }
}
