"""`python -m loadtest run`: N concurrent LLM-like streams against stream_server (see loadtest/README.md).

Modules, one concept each:

- `corpus`:   the shipped English text, cut into passages and LLM-like tokens; which token
              completes the first sentence (by the server's own segmenter).
- `feeder`:   sends tokens at a steady rate, like an LLM.
- `playout`:  a simulated player (playout clock, jitter buffer, underruns); sans I/O.
- `observer`: what one stream saw (TTFA, gaps, underruns, errors); sans I/O, fed by the clients.
- `ws_client`, `sse_client`: one stream over the WebSocket / over SSE sessions.
- `procstat`: CPU and RSS of a process, from /proc.
- `stats`:    percentiles.
- `runner`:   N concurrent streams for a bounded time; one level's figures.
- `server`:   starting `python -m stream_server` for a run.
- `spec`:     what each stream asks for; how long a binary frame lasts.
- `report`, `chart`: table, PNG (the JSON is the levels' dicts).
- `cli`:      the `run` subcommand.
- for `python -m loadtest bench` (loadtest/bench.py): `idle` (idle connections), `peers` (Piper's
  HTTP server and wyoming-piper), `benchmarks_md` (BENCHMARKS.md).
"""
