"""Analyse a saved capture: per-layer residual norms and the tensors with the largest activations.

python examples/analyze_results.py data/capture_*.json
"""

from __future__ import annotations

import sys

from spectra_vis import load_capture


def main() -> None:
    if len(sys.argv) < 2:
        sys.exit("usage: python examples/analyze_results.py CAPTURE.json")
    cap = load_capture(sys.argv[1])
    card, summary = cap.model, cap.summary()
    print(f"{card['name']} ({card['architecture']}, {card['n_layer']} layers, {card['file_type']})")
    print(
        f"preset {summary['preset']}: {summary['unique_tensors']} tensors, {summary['trials']} trials, "
        f"{summary['steps']} steps{'  [version 1.0 file, counts only]' if cap.legacy else ''}\n"
    )
    names = cap.data["stat_names"]
    by_id = {t["id"]: t for t in cap.tensors}
    for trial in cap.trials:
        print(f"Trial {trial['id']}: {trial['prompt']!r} -> {trial['response'].strip()!r}")
        peaks: dict[int, float] = {}
        for step in trial["steps"]:
            for tid, values in step["stats"].items():
                peaks[int(tid)] = max(peaks.get(int(tid), 0.0), values[names.index("absmax")])
        top = sorted(peaks.items(), key=lambda kv: -kv[1])[:10]
        print(f"  {'tensor':<24} {'layer':>5} {'type':<14} {'abs-max':>10}")
        for tid, peak in top:
            t = by_id[tid]
            print(f"  {t['key']:<24} {t['layer']:>5} {t['type']:<14} {peak:>10.2f}")
        if trial["steps"]:
            last = trial["steps"][-1]
            norms = {
                by_id[int(tid)]["layer"]: v[0] for tid, v in last["stats"].items() if by_id[int(tid)]["type"] == "l_out"
            }
            if norms:
                print(
                    "  residual-stream L2 norm by layer (last step): "
                    + ", ".join(f"{layer}: {v:.1f}" for layer, v in sorted(norms.items()))
                )
        print()


if __name__ == "__main__":
    main()
