"""Audio after the provider: resampling, framing and encoding, sans I/O (numpy and PyAV only)."""

from ..media import EncodedFrame
from .formats import FORMATS, OutputFormat, get_format
from .pipeline import AudioPipeline

__all__ = ["FORMATS", "AudioPipeline", "EncodedFrame", "OutputFormat", "get_format"]
