"""Prints bench/gpu's table from the JSON lines of herd's driver and the PyTorch baseline.

MFU = tokens/s × FLOPs per token / peak, with FLOPs per token = 6·N + 12·L·d·T (PaLM,
Chowdhery et al. 2022, appendix B: N the parameters in matrix products, the attention term
counting the full T×T scores though causal attention needs half) and the peak 989 TFLOP/s,
H100 SXM bf16 dense."""
import json, sys

PEAK = 989e12
presets = json.load(open(sys.argv[1]))
rows = [json.loads(l) for l in open(sys.argv[2]) if l.startswith("{")]
print(f"{'preset':<11} {'impl':<9} {'batch':>5} {'tokens/s':>10} {'MFU':>6} {'peak GiB':>9}  loss")
for r in rows:
    c = presets[r["preset"]]
    n = r.get("n_matmul") or next((x["n_matmul"] for x in rows if x["preset"] == r["preset"] and "n_matmul" in x), None)
    if "error" in r:
        print(f"{r['preset']:<11} {r['impl']:<9} {r['batch']:>5}  {r['error']}")
        continue
    flops = 6 * n + 12 * c["nLayers"] * c["dim"] * r["seq"] if n else float("nan")
    mfu = r["tokens_per_s"] * flops / PEAK
    print(f"{r['preset']:<11} {r['impl']:<9} {r['batch']:>5} {r['tokens_per_s']:>10.0f} {100*mfu:>5.1f}% "
          f"{r['peak_bytes']/2**30:>9.1f}  {r['loss']:.3f}")
