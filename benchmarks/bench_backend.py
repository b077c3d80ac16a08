"""Backend benchmark: how long a ~50 MB capture takes to load, and how fast the viewer's
requests answer once it is in memory (issue 4: loads in seconds; grid and heat maps well
under a second). Reports numbers; asserts nothing about time.

    python benchmarks/bench_backend.py                    # build (once) and measure a ~50 MB capture
    python benchmarks/bench_backend.py --size-mb 100      # a bigger one
    python benchmarks/bench_backend.py --capture data/capture_x.json   # measure an existing capture

The capture is real: a tiny random-weight llama (8 layers, written with
spectra_vis.testing.tiny_gguf) run by llama.cpp with the ``full`` preset over as many
prompts as it takes to reach the size. It is cached in --work (default
~/.cache/spectra-vis/bench-backend) and rebuilt when missing.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import socket
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx  # noqa: E402

PROMPTS = [
    "Once upon a time there was a list of three colors red green blue",
    "Write a Python function that adds two numbers and return the answer",
    "What is the capital of France and what is the capital of Spain",
    "The model has one layer of attention for each token in the story",
]


def build_capture(work: Path, size_mb: float) -> Path:
    """A real full-preset capture of a tiny 8-layer llama, of about ``size_mb`` megabytes."""
    from spectra_vis import capture
    from spectra_vis.testing.tiny_gguf import write_tiny_model

    out = work / f"capture_bench_{int(size_mb)}mb.json"
    if out.exists():
        return out
    work.mkdir(parents=True, exist_ok=True)
    model = write_tiny_model(work / "bench-llama-8l.gguf", arch="llama", n_layer=8, n_embd=128, n_ff=256, seed=3)
    opts = {"preset": "full", "max_tokens": 200, "n_ctx": 512}
    tmp = work / "building.json"
    n, size = len(PROMPTS), 0.0
    t = time.perf_counter()
    while size < 0.9 * size_mb * 1e6:  # random weights stop at random lengths: grow until big enough
        if size:
            n = max(n + 1, round(n * size_mb * 1e6 / size * 1.05))
        prompts = [f"{PROMPTS[i % len(PROMPTS)]} ({i})" for i in range(n)]
        print(f"capturing {n} prompts with the full preset on a tiny 8-layer llama ...", flush=True)
        capture(model, prompts, out=tmp, **opts)
        size = tmp.stat().st_size
    tmp.replace(out)
    print(f"  built {size / 1e6:.1f} MB in {time.perf_counter() - t:.1f} s", flush=True)
    return out


def build_pair(work: Path, n_tokens: int) -> Path:
    """A real standard-preset pair of ``n_tokens`` generated tokens: a tiny 8-layer llama (F32) and
    its Q8_0 (llama.cpp's quantizer) reading the same tokens (``spectra-vis compare``)."""
    from spectra_vis.capturing.quantize import quantize
    from spectra_vis.comparing.pair import capture_pair
    from spectra_vis.testing.tiny_gguf import write_tiny_model

    out = work / f"pair_bench_{n_tokens}.json"
    if out.exists():
        return out
    work.mkdir(parents=True, exist_ok=True)
    ref = write_tiny_model(work / "bench-pair-f32.gguf", arch="llama", n_layer=8, n_embd=128, n_ff=256, seed=3,
                           prefer_token="the")  # fmt: skip
    cand = quantize(ref, "Q8_0", work / "bench-pair-q8_0.gguf")
    print(f"capturing a {n_tokens}-token pair (standard preset) on a tiny 8-layer llama and its Q8_0 ...", flush=True)
    t = time.perf_counter()
    capture_pair(ref, cand, PROMPTS[0], max_tokens=n_tokens, n_ctx=n_tokens + 64, out=out)
    print(f"  built {out.stat().st_size / 1e6:.1f} MB in {time.perf_counter() - t:.1f} s", flush=True)
    return out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def serve(data_dir: Path) -> Iterator[httpx.Client]:
    import uvicorn

    from backend.server import create_app

    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(data_dir), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=300) as client:
            yield client
    finally:
        server.should_exit = True
        thread.join(10)


def timed(fn: Callable[[], Any], repeat: int) -> tuple[float, float, Any]:
    """(first call, median of the following calls) in milliseconds, and the last result."""
    t = time.perf_counter()
    result = fn()
    first = (time.perf_counter() - t) * 1000
    rest = []
    for _ in range(repeat):
        t = time.perf_counter()
        result = fn()
        rest.append((time.perf_counter() - t) * 1000)
    return first, statistics.median(rest) if rest else first, result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--capture", type=Path, help="measure this capture instead of building one")
    parser.add_argument("--size-mb", type=float, default=50.0, help="size of the capture to build (50)")
    parser.add_argument("--work", type=Path, default=Path.home() / ".cache" / "spectra-vis" / "bench-backend")
    parser.add_argument("--repeat", type=int, default=5, help="timed repeats of each request after the first (5)")
    parser.add_argument("--pair-tokens", type=int, default=1000, help="tokens of the /api/compare pair (0: skip)")
    parser.add_argument("--pair-only", action="store_true", help="only the /api/compare measurement")
    parser.add_argument("--report", type=Path, default=None, help="write the results into this markdown report "
                        "(docs/PERFORMANCE.md), in the part spectra-vis bench keeps")  # fmt: skip
    args = parser.parse_args(argv)
    if args.pair_tokens:
        line = compare_bench(build_pair(args.work, args.pair_tokens), args.repeat)
        if args.report:
            import platform

            cpu = platform.processor() or platform.machine()
            write_section(args.report, "Comparing two trials: GET /api/compare", [
                f"`python benchmarks/bench_backend.py --pair-tokens {args.pair_tokens}` on {cpu}, "
                f"{os.cpu_count()} cores: a standard-preset pair of a tiny 8-layer llama (F32) and its Q8_0, "
                f"{args.pair_tokens} generated tokens each, loaded in the server. \"first\" is the first request "
                "of this pair (computed), after one other comparison has warmed the server process up.",
                "", f"- {line}",
            ])  # fmt: skip
            print(f"wrote {args.report}")
        if args.pair_only:
            return 0

    from spectra_vis import load_capture

    path = args.capture or build_capture(args.work, args.size_mb)
    size = path.stat().st_size
    t = time.perf_counter()
    cap = load_capture(path)
    lib_load = time.perf_counter() - t
    trials = cap.data["trials"]
    longest = max(range(len(trials)), key=lambda i: len(trials[i]["steps"]))
    n_steps = len(trials[longest]["steps"])
    print(f"capture: {path} ({size / 1e6:.1f} MB, {len(trials)} trials, {len(cap.data['tensors'])} tensors, "
          f"{sum(len(t['steps']) for t in trials)} steps)")  # fmt: skip
    print(f"library load_capture (parse + schema validation): {lib_load:.2f} s")
    del cap

    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp)
        os.link(path, data / path.name) if path.stat().st_dev == data.stat().st_dev else shutil.copy(path, data)
        with serve(data) as client:
            t = time.perf_counter()
            r = client.post("/api/load", json={"filepath": path.name})
            r.raise_for_status()
            print(f"POST /api/load: {time.perf_counter() - t:.2f} s")
            cid = r.json()["capture_id"]
            mid = n_steps // 2
            trial = f"/api/trials/{longest}"
            requests: list[tuple[str, str, str, dict[str, Any]]] = [
                ("POST /api/tensor-grid (prefill)", "POST", "/api/tensor-grid", {"json": {"trial_id": longest}}),
                (f"POST /api/tensor-grid (step {mid})", "POST", "/api/tensor-grid",
                 {"json": {"trial_id": longest, "step": mid, "metric": "absmax"}}),
                ("GET /api/heatmap axis=types", "GET", "/api/heatmap", {"params": {"trial_id": longest, "step": mid}}),
                (f"GET /api/heatmap axis=tokens ({n_steps} steps)", "GET", "/api/heatmap",
                 {"params": {"trial_id": longest, "axis": "tokens"}}),
                (f"GET {trial}", "GET", trial, {}),
                (f"GET {trial}/steps/0", "GET", f"{trial}/steps/0", {}),
                ("GET /api/attention (one step, one layer)", "GET", "/api/attention",
                 {"params": {"trial_id": longest, "step": mid, "layer": 3}}),
                ("GET /api/attention (whole trial, all layers)", "GET", "/api/attention",
                 {"params": {"trial_id": longest}}),
                (f"GET {trial}/interpretation", "GET", f"{trial}/interpretation", {}),
                ("POST /api/analyze (all trials)", "POST", "/api/analyze", {"json": {"capture_id": cid}}),
                ("GET /api/files", "GET", "/api/files", {}),
            ]  # fmt: skip
            print(f"\n{'request':<48} {'first ms':>10} {'median ms':>10} {'bytes':>12}")
            for label, method, url, kwargs in requests:
                first, median, resp = timed(lambda m=method, u=url, k=kwargs: client.request(m, u, **k), args.repeat)
                resp.raise_for_status()
                print(f"{label:<48} {first:>10.1f} {median:>10.1f} {len(resp.content):>12}")
    print("\n(attention, interpretation and analyze are cached per capture after their first call)")
    return 0


def compare_bench(path: Path, repeat: int) -> str:
    """GET /api/compare of the pair's two trials once loaded: the first answer (computed) and the
    cached ones (target: at most 300 ms for two 1,000-token standard trials). One other comparison
    (a trial with itself) runs first: the first request of a server process costs about 150 ms more
    (code paths warming up), whatever the capture."""
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp)
        for f in (path, path.with_name(path.stem + ".vectors.safetensors")):
            shutil.copy(f, data / f.name)
        with serve(data) as client:
            r = client.post("/api/load", json={"filepath": path.name})
            r.raise_for_status()
            cid = r.json()["capture_id"]
            client.get("/api/compare", params={"a": f"{cid}:0", "b": f"{cid}:0"})  # the server's own warm-up, once
            params = {"a": f"{cid}:0", "b": f"{cid}:1"}
            first, median, resp = timed(lambda: client.get("/api/compare", params=params), repeat)
            resp.raise_for_status()
            body = resp.json()
            line = (f"GET /api/compare ({body['n_shared']} tokens, {len(body['layers'])} layers): "
                    f"first {first:.0f} ms (target <= 300), cached {median:.1f} ms, {len(resp.content):,} bytes")
            print(line)  # fmt: skip
    return line


def write_section(report: Path, title: str, lines: list[str]) -> None:
    """Put ``lines`` under ``## title`` in the kept part of docs/PERFORMANCE.md (replacing an older
    one of that title), which spectra-vis bench keeps when it rewrites the rest."""
    from spectra_vis.bench import KEPT_MARK
    from spectra_vis.store.files import atomic_write

    text = report.read_text() if report.exists() else "# Performance\n"
    head, mark, kept = text.partition(KEPT_MARK)
    sections = [s for s in kept.split("\n## ") if s.strip() and not s.startswith(title)]
    body = "\n".join([f"## {title}", "", *lines])
    new = head.rstrip("\n") + "\n\n" + KEPT_MARK + "\n" + "".join("\n## " + s.strip("\n") + "\n" for s in sections)
    atomic_write(report, (new + "\n" + body + "\n").encode())


if __name__ == "__main__":
    raise SystemExit(main())
