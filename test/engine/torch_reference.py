"""The LLaMA model written independently in PyTorch, for parity with herd's engine.

Usage: torch_reference.py <input.safetensors> <config.json> <output.safetensors>

The input holds the model's weights (Meta names, fp32), "tokens" and "targets" (int32 stored
as F32 values, exact below 2^24), and herd's gradients "herd_grad.<name>". The config holds
the model's shape and the optimizer step. Computes in fp32 with autograd: logits, mean
cross-entropy, every parameter's gradient and the global gradient norm; then, from herd's
gradients, clip_grad_norm_ and one torch.optim.AdamW step (weight decay on matrices only).
Writes "logits", "loss", "grad_norm", "grad.<name>" and "param.<name>".

The AdamW step starts from herd's gradients, not torch's, because Adam's first step is
m/(√v + ε) ≈ sign(g): for the rare gradient entries near ε, fp32 rounding differences between
two correct implementations flip the update by 2·lr. The gradients are compared on their own.

Also used by bench/engine-cpu.ts with --bench: times training and forward passes instead.
"""

import json
import struct
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F


def read_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    out = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        begin, end = entry["data_offsets"]
        raw = np.frombuffer(data[8 + n + begin : 8 + n + end], dtype=np.float32)
        out[name] = torch.from_numpy(raw.copy()).reshape(entry["shape"])
    return out


def write_safetensors(path, tensors):
    header, offset, blobs = {}, 0, []
    for name, t in tensors.items():
        b = t.detach().to(torch.float32).contiguous().numpy().tobytes()
        header[name] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [offset, offset + len(b)]}
        offset += len(b)
        blobs.append(b)
    h = json.dumps(header).encode()
    h += b" " * ((8 - (8 + len(h)) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


class Llama(torch.nn.Module):
    """Meta's LLaMA: pre-norm RMSNorm, RoPE on interleaved pairs, causal GQA attention, SwiGLU."""

    def __init__(self, c, weights):
        super().__init__()
        self.c = c
        self.p = torch.nn.ParameterDict({k.replace(".", "__"): torch.nn.Parameter(v.clone()) for k, v in weights.items()})
        hd = c["dim"] // c["nHeads"]
        freqs = 1.0 / (c["ropeTheta"] ** (torch.arange(0, hd, 2, dtype=torch.float64) / hd))
        angles = torch.outer(torch.arange(c["maxSeqLen"], dtype=torch.float64), freqs)
        self.cos, self.sin = angles.cos().float(), angles.sin().float()

    def w(self, name):
        return self.p[name.replace(".", "__")]

    def rmsnorm(self, x, g):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.c["normEps"]) * g

    def rope(self, x):  # x: [B, T, H, hd]; rotate pairs (x[2i], x[2i+1])
        T = x.shape[1]
        x0, x1 = x[..., 0::2], x[..., 1::2]
        cos, sin = self.cos[:T, None, :], self.sin[:T, None, :]
        return torch.stack((x0 * cos - x1 * sin, x0 * sin + x1 * cos), dim=-1).flatten(-2)

    def forward(self, tokens):
        c = self.c
        B, T = tokens.shape
        H, Hkv = c["nHeads"], c["nKvHeads"]
        hd = c["dim"] // H
        x = F.embedding(tokens, self.w("tok_embeddings.weight"))
        for l in range(c["nLayers"]):
            pre = f"layers.{l}."
            n = self.rmsnorm(x, self.w(pre + "attention_norm.weight"))
            q = (n @ self.w(pre + "attention.wq.weight").T).view(B, T, H, hd)
            k = (n @ self.w(pre + "attention.wk.weight").T).view(B, T, Hkv, hd)
            v = (n @ self.w(pre + "attention.wv.weight").T).view(B, T, Hkv, hd)
            q, k = self.rope(q), self.rope(k)
            q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
            k = k.repeat_interleave(H // Hkv, dim=1)
            v = v.repeat_interleave(H // Hkv, dim=1)
            a = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            x = x + a.transpose(1, 2).reshape(B, T, c["dim"]) @ self.w(pre + "attention.wo.weight").T
            n = self.rmsnorm(x, self.w(pre + "ffn_norm.weight"))
            h = F.silu(n @ self.w(pre + "feed_forward.w1.weight").T) * (n @ self.w(pre + "feed_forward.w3.weight").T)
            x = x + h @ self.w(pre + "feed_forward.w2.weight").T
        x = self.rmsnorm(x, self.w("norm.weight"))
        out = self.w("tok_embeddings.weight") if c["tiedEmbeddings"] else self.w("output.weight")
        return x @ out.T


def optimizer(model, o):
    decay = [p for p in model.p.values() if p.dim() >= 2]
    no_decay = [p for p in model.p.values() if p.dim() < 2]
    return torch.optim.AdamW(
        [{"params": decay, "weight_decay": o["weightDecay"]}, {"params": no_decay, "weight_decay": 0.0}],
        lr=o["lr"], betas=(o["beta1"], o["beta2"]), eps=o["eps"], foreach=False,
    )


def parity(inp, cfg, out):
    torch.manual_seed(0)
    c = json.load(open(cfg))
    tensors = read_safetensors(inp)
    tokens = tensors.pop("tokens").to(torch.int64)
    targets = tensors.pop("targets").to(torch.int64)
    herd_grads = {k[len("herd_grad."):]: tensors.pop(k) for k in list(tensors) if k.startswith("herd_grad.")}
    model = Llama(c["model"], tensors)
    logits = model(tokens)
    loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))
    loss.backward()
    result = {"logits": logits.reshape(-1, logits.shape[-1]), "loss": loss.reshape(1)}
    for name in tensors:
        result["grad." + name] = model.w(name).grad.clone()
    params = list(model.p.values())
    result["grad_norm"] = torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in params])).reshape(1)
    for name in tensors:
        model.w(name).grad = herd_grads[name].clone()
    torch.nn.utils.clip_grad_norm_(params, c["optimizer"]["gradClip"])
    optimizer(model, c["optimizer"]).step()
    for name in tensors:
        result["param." + name] = model.w(name)
    write_safetensors(out, result)


def bench(cfg):
    """Prints {"trainTokensPerSecond", "forwardTokensPerSecond"} for the config's model."""
    c = json.load(open(cfg))
    torch.set_num_threads(c["threads"])
    torch.manual_seed(0)
    m = c["model"]
    hd, kvd = m["dim"] // m["nHeads"], m["dim"] // m["nHeads"] * m["nKvHeads"]
    shapes = {"tok_embeddings.weight": [m["vocabSize"], m["dim"]], "norm.weight": [m["dim"]]}
    for l in range(m["nLayers"]):
        pre = f"layers.{l}."
        shapes.update({
            pre + "attention.wq.weight": [m["dim"], m["dim"]], pre + "attention.wk.weight": [kvd, m["dim"]],
            pre + "attention.wv.weight": [kvd, m["dim"]], pre + "attention.wo.weight": [m["dim"], m["dim"]],
            pre + "feed_forward.w1.weight": [m["ffnHidden"], m["dim"]], pre + "feed_forward.w2.weight": [m["dim"], m["ffnHidden"]],
            pre + "feed_forward.w3.weight": [m["ffnHidden"], m["dim"]], pre + "attention_norm.weight": [m["dim"]],
            pre + "ffn_norm.weight": [m["dim"]],
        })
    if not m["tiedEmbeddings"]:
        shapes["output.weight"] = [m["vocabSize"], m["dim"]]
    weights = {k: (torch.ones(s) if len(s) == 1 else torch.randn(s) * 0.02) for k, s in shapes.items()}
    model = Llama(m, weights)
    opt = optimizer(model, {"lr": 1e-3, "beta1": 0.9, "beta2": 0.95, "eps": 1e-8, "weightDecay": 0.1})
    B, T, steps = c["batch"], c["seqLen"], c["steps"]
    tokens = torch.randint(0, m["vocabSize"], (B, T + 1))

    def train_step():
        opt.zero_grad(set_to_none=True)
        logits = model(tokens[:, :-1])
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tokens[:, 1:].reshape(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(list(model.p.values()), 1.0)
        opt.step()

    train_step()  # warm-up
    t0 = time.perf_counter()
    for _ in range(steps):
        train_step()
    train_tps = steps * B * T / (time.perf_counter() - t0)
    with torch.no_grad():
        model(tokens[:, :-1])
        t0 = time.perf_counter()
        for _ in range(steps):
            model(tokens[:, :-1])
        fwd_tps = steps * B * T / (time.perf_counter() - t0)
    print(json.dumps({"trainTokensPerSecond": train_tps, "forwardTokensPerSecond": fwd_tps, "torch": torch.__version__}))


if __name__ == "__main__":
    if sys.argv[1] == "--bench":
        bench(sys.argv[2])
    else:
        parity(sys.argv[1], sys.argv[2], sys.argv[3])
