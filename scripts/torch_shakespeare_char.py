# The quality reference for issue 2: nanoGPT's CPU run of shakespeare_char, re-created in PyTorch so that its
# validation loss can be measured on this machine, seed by seed, next to `primer pretrain gpt`.
#
#   python3 scripts/torch_shakespeare_char.py CORPUS [--seed N] [--bias] [--gelu none|tanh] [--untied]
#
# Defaults are nanoGPT's own (train.py + config/train_shakespeare_char.py with the README's CPU flags): 4 layers,
# 4 heads, 128 wide, block 64, batch 12, no dropout, no biases, exact GELU, tied embedding and head; AdamW lr 1e-3,
# betas 0.9/0.99, weight decay 0.1 on 2-D tensors only, clip 1.0, 100 warm-up steps then cosine to 1e-4 at 2000;
# random training windows; 90 / 10 split of the characters. `--bias --gelu tanh` gives GPT-2's architecture, which
# is what primer trains. Prints one line: the validation loss after 2000 steps over 20 random batches (what
# nanoGPT reports with --eval_iters=20) and over 200, then the training loss over 200 and the wall time.
import argparse, math, time
import torch
import torch.nn as nn
import torch.nn.functional as F

ap = argparse.ArgumentParser()
ap.add_argument("corpus")
ap.add_argument("--seed", type=int, default=1337)
ap.add_argument("--bias", action="store_true")
ap.add_argument("--gelu", choices=["none", "tanh"], default="none")
ap.add_argument("--untied", action="store_true")
ap.add_argument("--threads", type=int, default=2)
args = ap.parse_args()

torch.manual_seed(args.seed)
torch.set_num_threads(args.threads)
text = open(args.corpus, encoding="utf-8").read()
chars = sorted(set(text))
index = {c: i for i, c in enumerate(chars)}
data = torch.tensor([index[c] for c in text], dtype=torch.long)
split = int(0.9 * len(data))
train_data, val_data = data[:split], data[split:]

BATCH, BLOCK, LAYERS, HEADS, WIDTH, VOCAB = 12, 64, 4, 4, 128, len(chars)
STEPS, WARMUP, LR, MIN_LR = 2000, 100, 1e-3, 1e-4


def sample(source):
    starts = torch.randint(len(source) - BLOCK, (BATCH,))
    x = torch.stack([source[s : s + BLOCK] for s in starts])
    y = torch.stack([source[s + 1 : s + 1 + BLOCK] for s in starts])
    return x, y


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        b = args.bias
        self.ln_1 = nn.LayerNorm(WIDTH, bias=b)
        self.c_attn = nn.Linear(WIDTH, 3 * WIDTH, bias=b)
        self.attn_proj = nn.Linear(WIDTH, WIDTH, bias=b)
        self.ln_2 = nn.LayerNorm(WIDTH, bias=b)
        self.c_fc = nn.Linear(WIDTH, 4 * WIDTH, bias=b)
        self.mlp_proj = nn.Linear(4 * WIDTH, WIDTH, bias=b)

    def forward(self, x):
        n, t, c = x.shape
        q, k, v = self.c_attn(self.ln_1(x)).split(WIDTH, dim=2)
        q, k, v = (z.view(n, t, HEADS, c // HEADS).transpose(1, 2) for z in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.attn_proj(y.transpose(1, 2).contiguous().view(n, t, c))
        return x + self.mlp_proj(F.gelu(self.c_fc(self.ln_2(x)), approximate=args.gelu))


class Gpt(nn.Module):
    def __init__(self):
        super().__init__()
        self.wte = nn.Embedding(VOCAB, WIDTH)
        self.wpe = nn.Embedding(BLOCK, WIDTH)
        self.blocks = nn.ModuleList(Block() for _ in range(LAYERS))
        self.ln_f = nn.LayerNorm(WIDTH, bias=args.bias)
        self.head = nn.Linear(WIDTH, VOCAB, bias=False)
        if not args.untied:
            self.wte.weight = self.head.weight
        for m in self.modules():
            if isinstance(m, (nn.Linear, nn.Embedding)):
                nn.init.normal_(m.weight, 0.0, 0.02)
            if isinstance(m, nn.Linear) and m.bias is not None:
                nn.init.zeros_(m.bias)
        for name, p in self.named_parameters():
            if name.endswith("proj.weight"):  # residual projections, scaled as GPT-2 does
                nn.init.normal_(p, 0.0, 0.02 / math.sqrt(2 * LAYERS))

    def forward(self, ids, targets):
        x = self.wte(ids) + self.wpe(torch.arange(ids.shape[1]))
        for block in self.blocks:
            x = block(x)
        logits = self.head(self.ln_f(x))
        return F.cross_entropy(logits.view(-1, VOCAB), targets.view(-1))


model = Gpt()
params = list(model.parameters())
optimizer = torch.optim.AdamW(
    [
        {"params": [p for p in params if p.dim() >= 2], "weight_decay": 0.1},
        {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
    ],
    lr=LR,
    betas=(0.9, 0.99),
)


def lr_at(step):
    if step < WARMUP:
        return LR * (step + 1) / (WARMUP + 1)
    progress = min((step - WARMUP) / (STEPS - WARMUP), 1.0)
    return MIN_LR + 0.5 * (1.0 + math.cos(math.pi * progress)) * (LR - MIN_LR)


@torch.no_grad()
def mean_loss(source, batches):
    model.eval()
    total = sum(model(*sample(source)).item() for _ in range(batches))
    model.train()
    return total / batches


start = time.time()
for step in range(STEPS):
    for group in optimizer.param_groups:
        group["lr"] = lr_at(step)
    loss = model(*sample(train_data))
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(params, 1.0)
    optimizer.step()
wall = time.time() - start
print(
    f"seed={args.seed} bias={args.bias} gelu={args.gelu} tied={not args.untied} "
    f"val_loss_20={mean_loss(val_data, 20):.4f} val_loss_200={mean_loss(val_data, 200):.4f} "
    f"train_loss_200={mean_loss(train_data, 200):.4f} wall_s={wall:.0f}"
)
