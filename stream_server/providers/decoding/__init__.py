"""Incremental decoding of what cloud TTS providers send: bytes in as they arrive, PCM out at once.

Sans I/O: a decoder is fed byte chunks of any size (down to one byte) with `feed()` and returns the
`PcmChunk`s (mono float32 in [-1, 1]) that those bytes completed; `close()` marks the end of the
input, flushes what is buffered and raises `DecodeError` for a stream that ends truncated. Nothing
blocks, nothing runs in a thread, and memory stays bounded however long the stream is: only an
incomplete header, page or frame is ever buffered.

    decoder = decoder_for_mime(response.headers["content-type"])
    async for data in response.aiter_bytes():
        for chunk in decoder.feed(data):
            yield chunk
    for chunk in decoder.close():
        yield chunk

All decoding and sample-format conversion is done by PyAV (FFmpeg). What this package does itself
is only *framing*: finding where a container's header ends and where one codec packet ends, so that
each packet goes to an FFmpeg decoder the moment its last byte arrives.

Why not simply run PyAV's demuxer (`av.open`) on the incoming bytes? It pulls its input through a
blocking `read()`: when the bytes that have arrived run out, `read()` must either block (so the
demuxer needs a thread of its own, per stream, that can be left hanging on an abandoned stream) or
return b"" -- which FFmpeg takes for the end of the file and never reads again. So per format
(one module each: pcm_wav, elementary, flac, ogg; registry maps names and MIME types to them):

- ``pcm`` / ``l16``: headerless s16le. The bytes go straight to FFmpeg's ``pcm_s16le`` decoder, in
  whole sample frames (a partial sample waits for its other byte). Output latency: one sample.
- ``wav``: a minimal walk of the RIFF chunks (12-byte RIFF header, then 8-byte chunk headers) finds
  ``fmt `` and the start of ``data``; other chunks (LIST, fact, JUNK...) are skipped without being
  kept. The ``fmt `` chunk is interpreted by PyAV's own WAV demuxer (run on a synthesized header
  only, so it never waits for data): it names the codec (any ``pcm_*``: integer, float, A-law,
  mu-law, WAVE_FORMAT_EXTENSIBLE...), rate and channels; the data bytes then go to that codec as
  in ``pcm``. A ``data`` size of 0 or 0xFFFFFFFF (and RIFF/RF64 placeholders >= 0x7FFFF000), as
  streaming encoders write, means "until the end of the input"; a real size is obeyed and
  whatever follows the data (trailing chunks) is ignored. Output latency: the header, then one
  sample frame.
- ``mp3`` and ``aac`` (ADTS): elementary streams; FFmpeg's own parsers (`CodecContext.parse()`)
  cut them into frames, each emitted as soon as it is complete (its header gives its length).
  A leading ID3v2 tag is skipped. For MP3, a Xing/Info/VBRI header frame is dropped (it is
  metadata, not audio) and its LAME tag, when present, gives the encoder delay and padding, which
  are trimmed as FFmpeg's MP3 demuxer does (gapless). Output latency: one frame (MP3: 1152
  samples, 576 below 32 kHz; AAC: 1024 samples), plus the decoder's own delay (MP3: 529 samples
  output as leading silence unless a LAME tag says otherwise; AAC: the encoder's priming, 1024
  samples for FFmpeg's encoder, is not signalled in ADTS and stays).
- ``flac``: FFmpeg's FLAC parser is not usable incrementally: it holds at least ten frames before
  it outputs one (about a second of audio) and, driven through `parse()`, it loses frames (it
  expects to be called again without new input). So the ``fLaC`` marker and metadata blocks are
  walked here (STREAMINFO becomes the decoder's extradata; other blocks, e.g. pictures, are
  skipped without being kept), and frames are delimited by the next frame header: a sync code
  whose header has a valid CRC-8, the stream's rate, channel count and sample size, and the next
  frame (or sample) number. Only then is a frame handed to FFmpeg's decoder, which checks the
  frame's CRC-16 (``err_detect=crccheck+explode``). Output latency: one frame plus the next
  frame's header (<= 16 bytes); the last frame comes out at `close()`.
- ``ogg`` (Opus; Vorbis too): Ogg pages are self-delimiting (27-byte header + lacing table), so
  pages are parsed here -- capture pattern, CRC-32, page sequence numbers, packet lacing across
  pages -- and each complete packet goes to FFmpeg's ``opus`` (or ``vorbis``) decoder, its
  identification header (OpusHead) as extradata. The Opus pre-skip is trimmed from the start,
  and the end-of-stream page's granule position trims the last packet's padding, as FFmpeg's Ogg
  demuxer does; chained streams (a new BOS after an EOS) are followed. The comment header is
  skipped without being kept (it may carry cover art). Output latency: one page, so it depends on
  the encoder: one Opus frame (20 ms) with a page per packet, as streaming encoders flush; a full
  second with FFmpeg's default ``page_duration``.

Output: one `PcmChunk` per decoded frame, at the codec's own rate (Opus: always 48 kHz);
multi-channel audio is averaged to mono (equal weights, so it cannot clip), lossy codecs'
overshoot is clipped to [-1, 1].

Corruption policy: strict, no skipping. Whatever can be detected -- a wrong magic number, an Ogg
page with a bad CRC or a missing page, a FLAC frame with a bad CRC or out of sequence, a packet
FFmpeg's decoder rejects, or, for mp3/aac, no decodable frame within the first 64 KiB -- raises
`DecodeError` from `feed()` at once, and the decoder stays failed (later calls raise again).
Raw PCM and WAV data cannot be checked: any bytes are valid samples. Audio already
returned stays valid. A truncated end -- a partial sample, header, page, packet or frame, an Ogg
stream without its end-of-stream page, fewer WAV data bytes or FLAC samples than the header
declares -- raises `DecodeError` from `close()`. What FFmpeg's MP3/AAC parsers skip while
resynchronising (e.g. an ID3v1 tag at the end) is skipped silently. A stream of zero bytes is
empty audio, not an error.
"""

from .base import DecodeError, StreamingDecoder
from .registry import FORMAT_ALIASES, PCM_DEFAULT_RATE, decoder_for_mime, open_decoder, parse_mime

__all__ = [
    "FORMAT_ALIASES",
    "PCM_DEFAULT_RATE",
    "DecodeError",
    "StreamingDecoder",
    "decoder_for_mime",
    "open_decoder",
    "parse_mime",
]
