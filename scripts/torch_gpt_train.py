# Copied from ../shared/bench/torch_gpt_train.py (the PyTorch reference for `primer bench train`).
# Changed only: the RESULT line also prints peak_rss_mib= (ru_maxrss, KiB on Linux, as MiB).
# PyTorch CPU baseline, same model/data/optimizer as candle-bench and burn-bench.
# Usage: python bench.py <small|big> [steps=50] [warmup=5]
import math, resource, sys, time
import torch
import torch.nn as nn
import torch.nn.functional as F

torch.set_num_threads(2)
torch.manual_seed(0)

CFGS = {
    "small": dict(vocab=65, block=64, batch=12, n_layer=4, n_head=4, n_embd=128),
    "big": dict(vocab=8192, block=128, batch=16, n_layer=6, n_head=8, n_embd=256),
}
M64 = (1 << 64) - 1


class Lcg:
    def __init__(self, s):
        self.s = s

    def next(self):
        self.s = (self.s * 6364136223846793005 + 1442695040888963407) & M64
        return self.s >> 33


def corpus(vocab, n):
    r, x, v = Lcg(42), 0, []
    for _ in range(n):
        v.append(x)
        x = (x + 1 + r.next() % 3) % vocab
    return torch.tensor(v, dtype=torch.long)


class Block(nn.Module):
    def __init__(self, c):
        super().__init__()
        e = c["n_embd"]
        self.nh = c["n_head"]
        self.ln_1 = nn.LayerNorm(e)
        self.c_attn = nn.Linear(e, 3 * e)
        self.c_proj = nn.Linear(e, e)
        self.ln_2 = nn.LayerNorm(e)
        self.fc = nn.Linear(e, 4 * e)
        self.proj = nn.Linear(4 * e, e)
        t = c["block"]
        self.register_buffer("mask", torch.triu(torch.full((t, t), float("-inf")), 1))

    def attn(self, x):
        b, t, c = x.shape
        hd = c // self.nh
        q, k, v = self.c_attn(x).split(c, dim=2)
        q, k, v = (z.view(b, t, self.nh, hd).transpose(1, 2) for z in (q, k, v))
        if SDPA:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:
            att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(hd)) + self.mask[:t, :t]
            y = F.softmax(att, dim=-1) @ v
        return self.c_proj(y.transpose(1, 2).contiguous().view(b, t, c))

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.proj(F.gelu(self.fc(self.ln_2(x))))


class GPT(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.wte = nn.Embedding(c["vocab"], c["n_embd"])
        self.wpe = nn.Embedding(c["block"], c["n_embd"])
        self.h = nn.ModuleList([Block(c) for _ in range(c["n_layer"])])
        self.ln_f = nn.LayerNorm(c["n_embd"])
        self.lm_head = nn.Linear(c["n_embd"], c["vocab"], bias=False)  # untied

    def forward(self, idx):
        t = idx.shape[1]
        x = self.wte(idx) + self.wpe(torch.arange(t))
        for b in self.h:
            x = b(x)
        return self.lm_head(self.ln_f(x))


def main():
    global SDPA
    name = sys.argv[1] if len(sys.argv) > 1 else "small"
    steps = int(sys.argv[2]) if len(sys.argv) > 2 else 50
    warmup = int(sys.argv[3]) if len(sys.argv) > 3 else 5
    SDPA = len(sys.argv) > 4 and sys.argv[4] == "sdpa"
    c = CFGS[name]
    model = GPT(c)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01)
    data = corpus(c["vocab"], 200_000)
    r = Lcg(1234)
    B, T = c["batch"], c["block"]
    times, first, last = [], None, None
    for i in range(warmup + steps):
        t0 = time.perf_counter()
        offs = [r.next() % (len(data) - T - 1) for _ in range(B)]
        x = torch.stack([data[o:o + T] for o in offs])
        y = torch.stack([data[o + 1:o + 1 + T] for o in offs])
        logits = model(x)
        loss = F.cross_entropy(logits.view(-1, c["vocab"]), y.view(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        l = loss.item()
        dt = time.perf_counter() - t0
        first = l if i == 0 else first
        last = l
        if i >= warmup:
            times.append(dt)
    times.sort()
    med = times[len(times) // 2]
    nparams = sum(p.numel() for p in model.parameters())
    print(f"params={nparams} torch={torch.__version__} threads={torch.get_num_threads()}")
    print(f"RESULT framework=torch cfg={name} attn={'sdpa' if SDPA else 'manual'} median_step_ms={med*1e3:.2f} "
          f"tokens_per_s={B*T/med:.0f} loss_first={first:.4f} loss_last={last:.4f} "
          f"peak_rss_mib={resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.1f}")


if __name__ == "__main__":
    main()
