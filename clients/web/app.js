// The demo page: pickers filled from the server's catalog, Speak / Simulate LLM / Stop, and the
// live view of one stream. Its state is `window.streamDemo`, which the browser test reads.

import { ConnectionError, fetchFormats, fetchVoices } from "./connection.js";
import { PLAYABLE_FORMATS, opusSupported } from "./decoders.js";
import { LLM_PARAGRAPH, streamTokens } from "./llm.js";
import { Meter } from "./meter.js";
import { Player } from "./player.js";
import { StreamAborted, StreamSession, freshStreamState } from "./session.js";

const $ = (id) => document.getElementById(id);
const ui = {
  form: $("speak-form"),
  text: $("text"),
  provider: $("provider"),
  voice: $("voice"),
  format: $("format"),
  speed: $("speed"),
  lead: $("lead"),
  apiKey: $("api-key"),
  speak: $("speak"),
  simulate: $("simulate"),
  stop: $("stop"),
  status: $("status"),
  error: $("error"),
  segments: $("segments"),
  segmentsEmpty: $("segments-empty"),
  ttfa: $("stat-ttfa"),
  serverTtfa: $("stat-server-ttfa"),
  audioFormat: $("stat-format"),
  buffered: $("stat-buffered"),
  frames: $("stat-frames"),
  gaps: $("stat-gaps"),
  waits: $("stat-waits"),
  played: $("stat-played"),
};

const ACTIVE_STATES = new Set(["connecting", "streaming", "finishing", "stopping"]);
const STATUS_TEXT = {
  idle: "Ready.",
  connecting: "Connecting…",
  streaming: "Streaming…",
  finishing: "Playing…",
  done: "Done.",
  stopping: "Stopped; waiting for the server to confirm…",
  stopped: "Stopped.",
  error: "Stopped with an error.",
};

const player = new Player();
const demo = {
  page: "loading", // loading, ready, error
  opusSupported: false,
  formatsOffered: [],
  contextSampleRate: null,
  contextState: null,
  llm: { running: false, tokensSent: 0, finishedAt: null },
  ...freshStreamState(),
};
window.streamDemo = demo;

let session = null;
let llmAbort = null;
let voicesByProvider = {};

new Meter($("wave"), $("level"), () => player.analyser);

// -- catalog --------------------------------------------------------------------------------------

async function loadCatalog() {
  try {
    const [voices, formats, opus] = await Promise.all([fetchVoices(), fetchFormats(), opusSupported()]);
    demo.opusSupported = opus;
    voicesByProvider = voices.providers;
    fillProviders(voices);
    fillFormats(formats.formats, opus);
    demo.page = "ready";
    ui.speak.disabled = false;
    ui.simulate.disabled = false;
  } catch (error) {
    demo.page = "error";
    showError(error instanceof ConnectionError ? error.message : `Loading the catalog failed: ${error}`);
  }
}

function option(value, label, disabled = false) {
  const element = document.createElement("option");
  element.value = value;
  element.textContent = label;
  element.disabled = disabled;
  return element;
}

function fillProviders(voices) {
  ui.provider.replaceChildren(...Object.keys(voices.providers).map((name) => option(name, name)));
  ui.provider.value = voices.default_provider in voices.providers ? voices.default_provider : ui.provider.value;
  fillVoices();
}

function fillVoices() {
  const voices = voicesByProvider[ui.provider.value] ?? [];
  ui.voice.replaceChildren(
    ...voices.map((v) => option(v.id, v.language ? `${v.name} (${v.language})` : v.name)),
  );
}

function fillFormats(formats, opus) {
  const playable = (name) => (name === "opus" ? opus : PLAYABLE_FORMATS.includes(name));
  const names = formats.map((f) => f.name);
  // Preferred first (PLAYABLE_FORMATS order: Opus is far smaller on the wire), then the unplayable.
  const ordered = [...PLAYABLE_FORMATS.filter((n) => names.includes(n) && playable(n)), ...names.filter((n) => !playable(n))];
  ui.format.replaceChildren(
    ...ordered.map((name) => {
      if (playable(name)) return option(name, name === "opus" ? "Opus" : name === "pcm" ? "PCM (16-bit)" : name);
      const why = name === "opus" ? "no WebCodecs here" : "not playable by this page";
      return option(name, `${name} (${why})`, true);
    }),
  );
  demo.formatsOffered = ordered.filter(playable);
  ui.format.value = demo.formatsOffered[0] ?? "";
}

ui.provider.addEventListener("change", fillVoices);

// -- streams --------------------------------------------------------------------------------------

function expectedSampleRate() {
  if (ui.format.value === "opus") return 48000;
  const voice = (voicesByProvider[ui.provider.value] ?? []).find((v) => v.id === ui.voice.value);
  return voice?.sample_rate ?? 24000;
}

async function startStream(feed) {
  if (session && ACTIVE_STATES.has(demo.state)) return;
  hideError();
  session?.retire();
  Object.assign(demo, freshStreamState(), { llm: { running: false, tokensSent: 0, finishedAt: null } });
  ui.segments.replaceChildren();
  renderedSegments.clear();
  // Start the audio context inside the click (autoplay policy); the stream's `ready` may still
  // change its rate, and Player.ensure then makes a new one.
  const audioReady = player.ensure(expectedSampleRate()).catch(() => {});
  session = new StreamSession({ player, state: demo, onChange: scheduleRender });
  const mine = session;
  const params = {
    provider: ui.provider.value,
    voice: ui.voice.value,
    format: ui.format.value,
    speed: ui.speed.value,
    max_lead_ms: ui.lead.value,
  };
  try {
    await audioReady;
    await mine.open(params, ui.apiKey.value.trim());
  } catch (error) {
    if (session !== mine || error instanceof StreamAborted) return;
    const message = error instanceof ConnectionError ? error.message : `Could not start: ${error}`;
    mine.fail("connection", message);
    showError(message);
    return;
  }
  await feed(mine);
}

function speakTypedText() {
  const text = ui.text.value.trim();
  if (!text) {
    showError("Type or paste some text first.");
    ui.text.focus();
    return;
  }
  startStream(async (stream) => {
    stream.sendText(text);
    stream.end();
  });
}

function simulateLlm() {
  ui.text.value = "";
  startStream(async (stream) => {
    llmAbort = new AbortController();
    demo.llm.running = true;
    ui.text.readOnly = true;
    const complete = await streamTokens(
      LLM_PARAGRAPH,
      (piece) => {
        ui.text.value += piece;
        ui.text.scrollTop = ui.text.scrollHeight;
        stream.sendText(piece);
        demo.llm.tokensSent += 1;
      },
      llmAbort.signal,
    );
    demo.llm.running = false;
    ui.text.readOnly = false;
    if (complete) {
      demo.llm.finishedAt = performance.now();
      stream.end();
    }
    scheduleRender();
  });
}

function stop() {
  llmAbort?.abort();
  session?.stop();
  scheduleRender();
}

ui.form.addEventListener("submit", (event) => {
  event.preventDefault();
  speakTypedText();
});
ui.simulate.addEventListener("click", simulateLlm);
ui.stop.addEventListener("click", stop);
ui.text.addEventListener("keydown", (event) => {
  if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
    event.preventDefault();
    speakTypedText();
  }
});
document.addEventListener("keydown", (event) => {
  if (event.key === "Escape" && ACTIVE_STATES.has(demo.state)) stop();
});

// -- rendering ------------------------------------------------------------------------------------

let renderPending = false;
let lastStatus = null;
const renderedSegments = new Map(); // index → <li>

function scheduleRender() {
  if (renderPending) return;
  renderPending = true;
  requestAnimationFrame(render);
}

function ms(value) {
  return value === null || value === undefined ? "—" : `${Math.round(value)} ms`;
}

function render() {
  renderPending = false;
  demo.contextSampleRate = player.sampleRate;
  demo.contextState = player.context?.state ?? null;
  const active = ACTIVE_STATES.has(demo.state);
  ui.speak.disabled = active || demo.page !== "ready";
  ui.simulate.disabled = active || demo.page !== "ready";
  ui.stop.disabled = !active;
  document.body.dataset.state = demo.state;

  const status = statusText();
  if (status !== lastStatus) {
    ui.status.textContent = status;
    lastStatus = status;
  }
  // Errors of a stream that goes on (a segment the provider failed) are shown too.
  const lastError = demo.errors[demo.errors.length - 1];
  if (lastError) showError(lastError.seq != null ? `Segment ${lastError.seq}: ${lastError.message}` : lastError.message);

  ui.ttfa.textContent = ms(demo.ttfaMs);
  ui.serverTtfa.textContent = ms(demo.serverTtfaMs);
  ui.audioFormat.textContent = demo.format ? `${demo.format === "opus" ? "Opus" : "PCM"} ${demo.sampleRate / 1000}k` : "—";
  ui.buffered.textContent = ms(demo.queuedMs);
  ui.frames.textContent = `${demo.decodedFrames}\u2009/\u2009${demo.framesReceived}`;
  ui.played.textContent = demo.format ? `${(demo.playedMs / 1000).toFixed(1)} s` : "—";
  ui.gaps.textContent = demo.underruns ? `${demo.underruns} (${Math.round(demo.maxGapMs)} ms)` : "0";
  ui.waits.textContent = demo.waits ? `${demo.waits} (${Math.round(demo.maxWaitMs)} ms)` : "0";
  renderSegments();
}

function statusText() {
  if (demo.page === "loading") return "Loading voices…";
  if (demo.page === "error" && demo.state === "idle") return "The server's catalog could not be loaded.";
  if (demo.state === "streaming" || demo.state === "finishing") {
    const current = demo.segments.find((s) => s.index === demo.currentSegment);
    if (current) return `Speaking segment ${demo.segments.indexOf(current) + 1} of ${demo.segments.length}…`;
    return demo.firstAudioAt === null ? "Waiting for the first audio…" : STATUS_TEXT[demo.state];
  }
  return STATUS_TEXT[demo.state] ?? demo.state;
}

function renderSegments() {
  ui.segmentsEmpty.hidden = demo.segments.length > 0;
  for (const segment of demo.segments) {
    let item = renderedSegments.get(segment.index);
    if (!item) {
      item = document.createElement("li");
      item.dataset.index = String(segment.index);
      item.textContent = segment.text;
      ui.segments.append(item);
      renderedSegments.set(segment.index, item);
    }
    if (item.dataset.state !== segment.state) {
      item.dataset.state = segment.state;
      item.className = `segment segment-${segment.state}`;
      if (segment.state === "playing") {
        item.setAttribute("aria-current", "true");
        keepInView(item);
      } else {
        item.removeAttribute("aria-current");
      }
    }
  }
}

// Scroll the segment list (not the page) so the segment heard now is visible.
function keepInView(item) {
  const list = ui.segments;
  const top = item.offsetTop;
  const bottom = top + item.offsetHeight;
  if (top < list.scrollTop) list.scrollTop = top;
  else if (bottom > list.scrollTop + list.clientHeight) list.scrollTop = bottom - list.clientHeight;
}

function showError(message) {
  if (ui.error.textContent !== message) ui.error.textContent = message;
  ui.error.hidden = false;
}

function hideError() {
  ui.error.hidden = true;
  ui.error.textContent = "";
}

render();
loadCatalog().then(render);
