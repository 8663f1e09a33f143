"""Benchmarks of stream_server, run by hand (not part of the test suite). See loadtest/README.md."""
