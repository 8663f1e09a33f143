"""The browser demo (clients/web) in a real headless Chromium, against a real server.

Chromium plays through its own audio stack: with no sound card it renders to a null sink that
still runs the AudioContext's clock in real time, so the page's AudioWorklet plays (and measures)
exactly as it would through speakers. Every figure asserted here is measured by the page itself
and read from `window.streamDemo`.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from stream_server.providers import tone
from stream_server.providers.tone import ToneProvider

from .conftest import RunningServer, run_server, tone_settings
from .helpers import wait_for

try:
    from playwright.async_api import Browser, Page, async_playwright
except ImportError:  # pragma: no cover - the skip/fail below says what to install
    async_playwright = None  # type: ignore[assignment]

CHROMIUM = Path("/usr/bin/chromium")
# Known to work headless here; --autoplay-policy lets the AudioContext start without a real click.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--autoplay-policy=no-user-gesture-required",
]
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"

SENTENCES = [
    "Hello there, this is the first sentence.",
    "The second one follows right after it.",
    "A third sentence keeps the stream going.",
    "And the fourth one ends it all.",
]
FRAME_MS = 20
# Waits are for states to be reached; these bound them (audio plays in real time: ~2 s here).
STREAM_TIMEOUT_MS = 20_000


def require_chromium() -> Path:
    """Debian's Chromium (Playwright must never download a browser): skipped where it is missing,
    except in CI (`CI=true`), where .ci/run installs it and its absence is a failure."""
    missing = None
    if async_playwright is None:
        missing = "the playwright package is not installed (pip install -e '.[test]')"
    elif not CHROMIUM.exists():
        missing = f"{CHROMIUM} is not installed (apt-get install chromium)"
    if missing:
        if os.environ.get("CI"):
            pytest.fail(f"{missing}; CI must provide it")
        pytest.skip(missing)
    return CHROMIUM


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    executable = require_chromium()
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=str(executable), args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            await launched.close()


@pytest.fixture(scope="module")
async def demo_server(tone_provider: ToneProvider) -> AsyncIterator[RunningServer]:
    # The settings leave web_dir unset: the server serves the source tree's clients/web.
    async with run_server(tone_settings(), {"tone": tone_provider}) as running:
        yield running


@pytest.fixture
async def page(browser: Browser, demo_server: RunningServer) -> AsyncIterator[Page]:
    context = await browser.new_context(viewport={"width": 1200, "height": 900})
    context.set_default_timeout(10_000)
    opened = await context.new_page()
    page_errors: list[str] = []
    opened.on("pageerror", lambda error: page_errors.append(str(error)))
    try:
        yield opened
    finally:
        await context.close()
    assert page_errors == [], f"uncaught errors in the page: {page_errors}"


async def open_demo(page: Page, server: RunningServer) -> None:
    await page.goto(f"{server.http_url}/")
    await page.wait_for_function("() => window.streamDemo && window.streamDemo.page === 'ready'", timeout=10_000)


async def demo_state(page: Page) -> dict[str, Any]:
    return await page.evaluate("() => structuredClone(window.streamDemo)")


async def wait_demo(page: Page, condition: str, timeout_ms: int = STREAM_TIMEOUT_MS) -> dict[str, Any]:
    """Wait until `condition` (JavaScript over `d`, the page's streamDemo) holds; return the state then."""
    await page.wait_for_function(f"() => {{ const d = window.streamDemo; return {condition}; }}", timeout=timeout_ms)
    return await demo_state(page)


async def speak(page: Page, text: str) -> None:
    await page.fill("#text", text)
    await page.click("#speak")


def assert_played_without_gaps(state: dict[str, Any], sentences: list[str], *, text_in_time: bool = True) -> None:
    """What every finished stream must show: each sentence decoded, played in full, no gap.

    With `text_in_time` the whole text was sent at once, so every segment was there before the one
    before it had played out: no waits between segments either.
    """
    assert state["state"] == "done", state["errors"]
    assert state["errors"] == []
    segments = state["segments"]
    assert [s["text"] for s in segments] == sentences
    assert all(s["played"] and s["state"] == "played" for s in segments)
    # Every frame received was decoded, and each segment decoded to exactly the audio the server sent.
    assert state["framesReceived"] > 0
    assert state["decodedFrames"] == state["framesReceived"]
    for segment in segments:
        assert segment["decodedMs"] == pytest.approx(segment["audioMs"], abs=0.05), segment
    total_ms = state["done"]["audio_ms"]
    assert total_ms >= sum(tone.expected_duration_ms(s) for s in sentences)
    assert state["decodedMs"] == pytest.approx(total_ms, abs=0.05)
    # All of it was handed to the worklet and played out, with no gap longer than one frame.
    assert state["framesScheduled"] == state["decodedFrames"]
    assert state["playedMs"] == pytest.approx(total_ms, abs=0.05)
    assert state["maxGapMs"] <= FRAME_MS, f"{state['underruns']} underruns"
    if text_in_time:
        assert state["waits"] == 0, f"waited {state['maxWaitMs']} ms between segments"
    assert state["rejectedSamples"] == 0
    # Played in real time by a running audio clock: from the first sample to the last took as
    # long as the audio (minus at most the gaps), never faster.
    assert state["contextState"] == "running"
    wall_ms = state["drainedAt"] - state["firstAudioAt"]
    assert wall_ms >= 0.9 * total_ms, (wall_ms, total_ms)
    assert wall_ms <= total_ms + 1000
    # Time to first audio as the listener hears it, and the server's part of it.
    assert 0 < state["ttfaMs"] < 3000
    assert state["serverTtfaMs"] is not None and state["serverTtfaMs"] <= state["ttfaMs"]


async def test_the_page_offers_the_servers_voices_and_the_playable_formats(page: Page, demo_server: RunningServer):
    await open_demo(page, demo_server)
    assert await page.locator("#provider option").all_inner_texts() == ["tone"]
    assert await page.eval_on_selector_all("#voice option", "els => els.map(e => e.value)") == ["beep", "low"]
    formats = await page.eval_on_selector_all(
        "#format option", "els => els.map(e => ({value: e.value, disabled: e.disabled}))"
    )
    enabled = [f["value"] for f in formats if not f["disabled"]]
    assert enabled == ["opus", "pcm"]
    assert {f["value"] for f in formats if f["disabled"]} >= {"mp3", "wav", "ogg_opus"}
    assert await page.input_value("#format") == "opus"
    state = await demo_state(page)
    assert state["opusSupported"] is True
    assert state["formatsOffered"] == ["opus", "pcm"]


@pytest.mark.parametrize("width", [1200, 400])
async def test_a_long_voice_name_is_not_cut_off(browser: Browser, demo_server: RunningServer, width: int):
    context = await browser.new_context(viewport={"width": width, "height": 800})
    try:
        page = await context.new_page()
        await open_demo(page, demo_server)
        # Piper's embedded voice, as the picker shows it: the longest of the usual names.
        spare = await page.evaluate(
            """() => {
                const select = document.querySelector("#voice");
                select.replaceChildren(new Option("en_US-joe-medium (en-us)", "en_US-joe-medium"));
                const style = getComputedStyle(select);
                const context = document.createElement("canvas").getContext("2d");
                context.font = style.font;
                const text = context.measureText(select.options[0].text).width;
                const arrow = 20;  // the drop-down arrow's room
                const room = select.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight) - arrow;
                return room - text;
            }"""
        )
        assert spare >= 0, f"the voice name is cut off by {-spare:.0f} px at {width} px wide"
    finally:
        await context.close()


async def test_opus_stream_is_decoded_by_webcodecs_and_played_gap_free(
    page: Page, demo_server: RunningServer, tmp_path: Path
):
    await open_demo(page, demo_server)
    await speak(page, " ".join(SENTENCES))

    # Mid-stream: the segment heard now is highlighted in the list.
    await wait_demo(page, "d.currentSegment !== null && d.segments.length >= 3 && d.playedMs > 600")
    playing = page.locator("#segments li[aria-current='true']")
    assert await playing.count() == 1
    assert await playing.inner_text() in SENTENCES
    screenshot = await page.screenshot(full_page=True)
    (tmp_path / "browser.png").write_bytes(screenshot)
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "browser.png").write_bytes(screenshot)

    state = await wait_demo(page, "d.drained && d.done !== null")
    assert state["format"] == "opus"
    assert state["sampleRate"] == 48000 and state["contextSampleRate"] == 48000
    assert_played_without_gaps(state, SENTENCES)
    # The decoder's own timestamps: each frame starts exactly where the one before it ended.
    assert state["maxScheduleGapMs"] is not None and state["maxScheduleGapMs"] < 0.01
    assert state["decodedFrames"] * FRAME_MS == pytest.approx(state["done"]["audio_ms"], abs=0.05)
    assert await page.locator("#segments li").all_inner_texts() == SENTENCES
    assert await page.locator("#segments li[aria-current]").count() == 0
    assert (await page.inner_text("#status")) == "Done."


async def test_pcm_picked_in_the_format_picker_unpaced(page: Page, demo_server: RunningServer):
    await open_demo(page, demo_server)
    await page.select_option("#format", "pcm")
    # Lead 0: the server sends the whole stream at once; the page must hold it and play it out.
    await page.click("details.connection summary")
    await page.fill("#lead", "0")
    await speak(page, " ".join(SENTENCES[:2]))
    state = await wait_demo(page, "d.drained && d.done !== null")
    assert state["ready"]["max_lead_ms"] == 0
    assert state["format"] == "pcm"
    # The AudioContext runs at the stream's rate: nothing is resampled by the page.
    assert state["sampleRate"] == 24000 and state["contextSampleRate"] == 24000
    assert_played_without_gaps(state, SENTENCES[:2])


async def test_without_webcodecs_the_page_falls_back_to_pcm(browser: Browser, demo_server: RunningServer):
    context = await browser.new_context()
    await context.add_init_script("delete window.AudioDecoder; delete window.EncodedAudioChunk;")
    page = await context.new_page()
    try:
        await open_demo(page, demo_server)
        assert (await demo_state(page))["opusSupported"] is False
        assert await page.input_value("#format") == "pcm"
        assert await page.eval_on_selector("#format option[value='opus']", "e => e.disabled") is True
        await speak(page, SENTENCES[0])
        state = await wait_demo(page, "d.drained && d.done !== null")
        assert state["format"] == "pcm"
        assert_played_without_gaps(state, SENTENCES[:1])
    finally:
        await context.close()


async def test_simulated_llm_is_heard_while_it_is_still_writing(page: Page, demo_server: RunningServer):
    await open_demo(page, demo_server)
    await page.click("#simulate")
    state = await wait_demo(page, "d.drained && d.done !== null")
    paragraph = await page.evaluate("() => import('/static/llm.js').then(m => m.LLM_PARAGRAPH)")
    sentences = [s if s.endswith(".") else s + "." for s in paragraph.split(". ")]
    assert state["textMessagesSent"] == state["llm"]["tokensSent"] > 20
    assert state["textCharsSent"] == len(paragraph)
    assert await page.input_value("#text") == paragraph
    # The tone voice speaks faster than the "LLM" writes (80 ms a word), so it may wait between
    # segments for the next sentence; inside a segment there must be no gap.
    assert_played_without_gaps(state, sentences, text_in_time=False)
    # Streaming for real: the first sentence was heard before the "LLM" had finished writing.
    assert state["firstAudioAt"] < state["llm"]["finishedAt"]


async def test_stop_barges_in(page: Page, demo_server: RunningServer):
    await open_demo(page, demo_server)
    long_text = " ".join(SENTENCES * 8)  # about 17 s of audio, paced at 1.5 s ahead
    await speak(page, long_text)
    await wait_demo(page, "d.playedMs > 500 && d.currentSegment !== null")
    await page.click("#stop")

    # Silenced at once: the worklet confirms its queue is empty, and nothing plays after the Stop.
    state = await wait_demo(page, "d.stopped && d.flushed && d.cancelled && d.state === 'stopped'", 5_000)
    assert state["workletQueuedMs"] == 0 and state["queuedMs"] == 0
    assert state["playedMs"] > 500
    assert state["playedAfterStopMs"] == 0
    assert state["currentSegment"] is None
    # The page renders its status on the next animation frame: wait for that frame, then check.
    await page.wait_for_function("document.querySelector('#status').innerText !== 'Stopped; waiting for the server to confirm…'", timeout=5_000)
    assert await page.inner_text("#status") == "Stopped."
    assert await page.is_disabled("#stop")
    assert await page.is_enabled("#speak")
    # The server dropped the rest: its `done` counts far less audio than the text holds.
    state = await wait_demo(page, "d.done !== null && d.closeCode === 1000", 5_000)
    assert state["playedAfterStopMs"] == 0, "audio played after Stop"
    assert state["done"]["audio_ms"] < tone.expected_duration_ms(long_text) / 2
    assert len(state["segments"]) < len(SENTENCES * 8)
    assert state["errors"] == []
    skipped = await page.locator("#segments li.segment-skipped").count()
    assert skipped >= 1
    await wait_for(lambda: not demo_server.state.streams, timeout=5)

    # The page is ready for the next stream, here at another rate (a new AudioContext at 24 kHz).
    await page.select_option("#format", "pcm")
    await speak(page, SENTENCES[0])
    state = await wait_demo(page, "d.drained && d.done !== null")
    assert state["contextSampleRate"] == 24000
    assert_played_without_gaps(state, SENTENCES[:1])
    assert await page.locator("#segments li").all_inner_texts() == SENTENCES[:1]


API_KEY = "sk-demo-key-0123456789"


@pytest.fixture(scope="module")
async def keyed_server(tone_provider: ToneProvider) -> AsyncIterator[RunningServer]:
    async with run_server(tone_settings(api_keys=(API_KEY,)), {"tone": tone_provider}) as running:
        yield running


async def speak_with_key(page: Page, server: RunningServer, key: str) -> tuple[list[dict[str, str]], list[str]]:
    """Speak SENTENCES[0] with `key` in the API key field; the token requests' headers and the sockets opened."""
    token_requests: list[dict[str, str]] = []
    sockets: list[str] = []
    page.on("request", lambda r: token_requests.append(r.headers) if r.url.endswith("/v1/tokens") else None)
    page.on("websocket", lambda ws: sockets.append(ws.url))
    await open_demo(page, server)
    await page.click("details.connection summary")
    await page.fill("#api-key", key)
    await speak(page, SENTENCES[0])
    return token_requests, sockets


async def test_with_an_api_key_the_page_streams_with_a_token(page: Page, keyed_server: RunningServer):
    token_requests, sockets = await speak_with_key(page, keyed_server, API_KEY)
    state = await wait_demo(page, "d.drained && d.done !== null")
    assert_played_without_gaps(state, SENTENCES[:1])
    assert [r.get("authorization") for r in token_requests] == [f"Bearer {API_KEY}"]
    # The socket carries the single-use token, never the key.
    (url,) = sockets
    assert "token=" in url and API_KEY not in url


async def test_a_wrong_api_key_is_reported_clearly(page: Page, keyed_server: RunningServer):
    token_requests, sockets = await speak_with_key(page, keyed_server, "sk-wrong")
    state = await wait_demo(page, "d.state === 'error'", 5_000)
    assert len(token_requests) == 1
    assert sockets == []
    assert state["ready"] is None
    alert = page.locator("#error")
    assert await alert.is_visible()
    assert "API key was refused (HTTP 401)" in await alert.inner_text()
    assert await page.is_enabled("#speak")


async def test_a_server_that_needs_a_key_refuses_a_plain_connection(page: Page, keyed_server: RunningServer):
    token_requests, sockets = await speak_with_key(page, keyed_server, "")
    state = await wait_demo(page, "d.state === 'error'", 5_000)
    assert token_requests == []
    assert len(sockets) == 1 and "token=" not in sockets[0]
    assert state["ready"] is None
    assert "API key" in await page.locator("#error").inner_text()
