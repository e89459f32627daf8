"""PyTorch baseline for bench/gpu: the same LLaMA (RMSNorm, RoPE, SwiGLU, GQA, untied output)
trained in eager mode with bf16 autocast and F.scaled_dot_product_attention, fused AdamW.
Prints one JSON line like herd's driver: tokens/s and peak memory."""
import json, sys, time

import torch
import torch.nn.functional as F
from torch import nn


class Block(nn.Module):
    def __init__(s, c):
        super().__init__()
        d, hd = c["dim"], c["dim"] // c["nHeads"]
        s.h, s.kvh, s.hd = c["nHeads"], c["nKvHeads"], hd
        s.attention_norm = nn.RMSNorm(d, eps=1e-5)
        s.wqkv = nn.Linear(d, d + 2 * s.kvh * hd, bias=False)
        s.wo = nn.Linear(d, d, bias=False)
        s.ffn_norm = nn.RMSNorm(d, eps=1e-5)
        s.w1 = nn.Linear(d, c["ffnHidden"], bias=False)
        s.w3 = nn.Linear(d, c["ffnHidden"], bias=False)
        s.w2 = nn.Linear(c["ffnHidden"], d, bias=False)

    def forward(s, x, cos, sin):
        B, T, d = x.shape
        q, k, v = s.wqkv(s.attention_norm(x)).split([d, s.kvh * s.hd, s.kvh * s.hd], dim=-1)
        q = rope(q.view(B, T, s.h, s.hd), cos, sin).transpose(1, 2)
        k = rope(k.view(B, T, s.kvh, s.hd), cos, sin).transpose(1, 2)
        v = v.view(B, T, s.kvh, s.hd).transpose(1, 2)
        a = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=s.kvh != s.h)
        h = x + s.wo(a.transpose(1, 2).reshape(B, T, d))
        n = s.ffn_norm(h)
        return h + s.w2(F.silu(s.w1(n)) * s.w3(n))


def rope(x, cos, sin):  # consecutive pairs rotated, as Meta's LLaMA and herd
    x0, x1 = x[..., 0::2], x[..., 1::2]
    return torch.stack((x0 * cos - x1 * sin, x0 * sin + x1 * cos), dim=-1).flatten(-2)


class Llama(nn.Module):
    def __init__(s, c):
        super().__init__()
        s.tok = nn.Embedding(c["vocabSize"], c["dim"])
        s.layers = nn.ModuleList(Block(c) for _ in range(c["nLayers"]))
        s.norm = nn.RMSNorm(c["dim"], eps=1e-5)
        s.output = nn.Linear(c["dim"], c["vocabSize"], bias=False)
        hd = c["dim"] // c["nHeads"]
        freq = 10000.0 ** (-torch.arange(0, hd, 2, dtype=torch.float64) / hd)
        ang = torch.outer(torch.arange(c["maxSeqLen"], dtype=torch.float64), freq)
        s.register_buffer("cos", ang.cos().float()[:, None, :], persistent=False)
        s.register_buffer("sin", ang.sin().float()[:, None, :], persistent=False)

    def forward(s, idx, targets):
        T = idx.shape[1]
        x = s.tok(idx)
        for layer in s.layers:
            x = layer(x, s.cos[:T], s.sin[:T])
        logits = s.output(s.norm(x))
        return F.cross_entropy(logits.float().view(-1, logits.shape[-1]), targets.view(-1))


def main():
    c = json.loads(sys.argv[1])
    B, steps = int(sys.argv[2]), int(sys.argv[3])
    T = c["maxSeqLen"]
    torch.manual_seed(0)
    model = Llama(c).cuda()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-4, betas=(0.9, 0.95), weight_decay=0.1, fused=True)
    idx = torch.randint(0, c["vocabSize"], (B, T), device="cuda")
    tgt = torch.randint(0, c["vocabSize"], (B, T), device="cuda")

    def step():
        opt.zero_grad(set_to_none=True)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = model(idx, tgt)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        return loss

    try:
        for _ in range(2):
            step()
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        t0 = time.perf_counter()
        for _ in range(steps):
            loss = step()
        torch.cuda.synchronize()
        secs = time.perf_counter() - t0
        out = {"impl": "pytorch", "batch": B, "seq": T, "tokens_per_s": B * T * steps / secs,
               "peak_bytes": torch.cuda.max_memory_allocated(), "loss": float(loss)}
    except torch.cuda.OutOfMemoryError:
        out = {"impl": "pytorch", "batch": B, "seq": T, "error": "out of memory"}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
