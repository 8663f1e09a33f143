"""A Piper voice's ONNX graph cut in two: the front part (phoneme ids → latent and durations) and
the decoder (a latent window → audio), and the one-shot graph with its durations exposed.

A Piper voice is a VITS model. Its text encoder, duration predictor and flow make the latent
`z * y_mask` of the whole sentence, cheaply; its HiFi-GAN decoder, most of the cost, turns that
latent into audio, `hop` samples per latent frame. The decoder is convolutional, so it can run
on windows of the latent (`piper_windows.py`) and the first audio leaves before the sentence is
decoded. The cut is found, not assumed: the decoder's nodes are those named `/dec/...` (the name
every Piper export gives the VITS `dec` module), and the front part's result is the one tensor
from outside that they read. A graph where that does not hold (another architecture, a decoder
that reads the speaker embedding, names stripped by an optimizer) cannot be cut and keeps the
one-shot path.

The durations are the `Ceil` tensor, `w_ceil`: latent frames per phoneme id (Piper's own
`patch_voice_with_alignment.py` marks the same tensor as an output for its alignments).
"""

from __future__ import annotations

from dataclasses import dataclass

import onnx
from onnx.utils import Extractor

DECODER_PREFIX = "/dec/"
GRAPH_INPUTS = ("input", "input_lengths", "scales")
"""What every Piper voice takes; a multi-speaker one also takes `sid`."""


class SplitError(ValueError):
    """The graph cannot be cut into a front part and a decoder."""


@dataclass(frozen=True, slots=True)
class SplitGraph:
    front: bytes
    """Serialized model: the voice's inputs → (latent [1, C, frames], durations [1, 1, ids])."""
    decoder: bytes
    """Serialized model: latent [1, C, frames] → audio [1, 1, frames × hop]."""
    latent_name: str
    durations_name: str
    audio_name: str


def durations_tensor(graph: onnx.GraphProto) -> str:
    """The name of the `Ceil` tensor (frames per phoneme id)."""
    ceil = [out for node in graph.node if node.op_type == "Ceil" for out in node.output]
    if len(ceil) != 1:
        raise SplitError(f"expected one Ceil tensor (the durations), found {len(ceil)}")
    return ceil[0]


def with_durations(model: onnx.ModelProto) -> bytes:
    """The whole graph, serialized, with the durations as a second output (for one-shot voices'
    word timings). Raises `SplitError` if the durations cannot be found."""
    patched = onnx.ModelProto()
    patched.CopyFrom(model)
    name = durations_tensor(patched.graph)
    if not any(out.name == name for out in patched.graph.output):
        patched.graph.output.append(onnx.helper.make_empty_tensor_value_info(name))
    return patched.SerializeToString()


def split(model: onnx.ModelProto) -> SplitGraph:
    """Cuts `model` at the decoder's input. Raises `SplitError` where the graph does not allow it."""
    graph = model.graph
    inputs = [i.name for i in graph.input]
    if [name for name in inputs if name != "sid"] != list(GRAPH_INPUTS):
        raise SplitError(f"unexpected graph inputs {inputs}")
    if len(graph.output) != 1:
        raise SplitError("expected one graph output (the audio)")
    audio_name = graph.output[0].name
    durations_name = durations_tensor(graph)
    latent_name = _decoder_input(graph)
    extractor = Extractor(model)
    try:
        front = extractor.extract_model(inputs, [latent_name, durations_name])
        decoder = extractor.extract_model([latent_name], [audio_name])
    except Exception as exc:  # onnx raises several kinds for a cut that leaves a dangling tensor
        raise SplitError(f"extraction failed: {exc}") from exc
    if {i.name for i in decoder.graph.input} != {latent_name}:
        raise SplitError("the decoder reads more than the latent")
    return SplitGraph(
        front=front.SerializeToString(),
        decoder=decoder.SerializeToString(),
        latent_name=latent_name,
        durations_name=durations_name,
        audio_name=audio_name,
    )


def _decoder_input(graph: onnx.GraphProto) -> str:
    """The one non-constant tensor that the decoder's nodes read from outside the decoder."""
    constants = {init.name for init in graph.initializer}
    constants |= {out for node in graph.node if node.op_type == "Constant" for out in node.output}
    decoder_nodes = [node for node in graph.node if node.name.startswith(DECODER_PREFIX)]
    if not decoder_nodes:
        raise SplitError(f"no {DECODER_PREFIX} nodes")
    made_inside = {out for node in decoder_nodes for out in node.output}
    read_from_outside = {
        name
        for node in decoder_nodes
        for name in node.input
        if name and name not in made_inside and name not in constants
    }
    if len(read_from_outside) != 1:
        raise SplitError(f"the decoder reads {sorted(read_from_outside)} from outside, expected one latent")
    return read_from_outside.pop()
