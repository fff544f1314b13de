"""PyTorch peer of bench/gpt_bench.cpp: the identical byte-level GPT (examples/gpt/gpt_model.h) trained the same way.
usage: /usr/bin/python3 gpt_torch.py --threads 1 [--n-layer 4 --n-head 4 --n-embd 128 --block-size 64 --batch 16]
                                     [--steps 30 --warmup-steps 5 --seed 0 --data /usr/share/games/fortunes]
Needs Debian's PyTorch 1.13 (apt-get install -y python3-torch; it imports under /usr/bin/python3 only).

Model (nanoGPT's, as Braid's): token embedding + learned positional embedding, pre-LayerNorm blocks of causal
self-attention (one fused c_attn Linear(C, 3C), softmax(q k^T / sqrt(D)) with a causal mask, c_proj Linear(C, C))
and an MLP (Linear(C, 4C), GELU(tanh), Linear(4C, C)), final LayerNorm, head tied to the token embedding; GPT-2's
init; no dropout. Optimizer: AdamW (betas 0.9/0.99, weight decay 0.1 on the weight matrices only, lr 1e-3 constant:
the schedule costs nothing), gradient clipping at norm 1. Data: random windows of block+1 bytes of the fortunes text
(the same files in the same order), drawn before the timed region. Timed: --steps steps after --warmup-steps
untimed ones; tokens/s = steps * batch * block / seconds. Prints one JSON line."""
import argparse, json, math, os, time
import torch, torch.nn as nn, torch.nn.functional as F


class CausalSelfAttention(nn.Module):
    def __init__(self, c, h):
        super().__init__()
        self.c_attn, self.c_proj, self.n_head = nn.Linear(c, 3 * c), nn.Linear(c, c), h

    def forward(self, x):
        B, T, C = x.shape
        q, k, v = self.c_attn(x).split(C, dim=2)
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(k.size(-1)))
        mask = torch.ones(T, T, dtype=torch.bool).tril()
        att = F.softmax(att.masked_fill(~mask, float("-inf")), dim=-1)
        return self.c_proj((att @ v).transpose(1, 2).contiguous().view(B, T, C))


class Block(nn.Module):
    def __init__(self, c, h):
        super().__init__()
        self.ln_1, self.attn, self.ln_2 = nn.LayerNorm(c), CausalSelfAttention(c, h), nn.LayerNorm(c)
        self.mlp = nn.Sequential(nn.Linear(c, 4 * c), nn.GELU(approximate="tanh"), nn.Linear(4 * c, c))

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    def __init__(self, vocab, block, n_layer, n_head, c):
        super().__init__()
        self.wte, self.wpe = nn.Embedding(vocab, c), nn.Embedding(block, c)
        self.h = nn.ModuleList(Block(c, n_head) for _ in range(n_layer))
        self.ln_f = nn.LayerNorm(c)
        for name, p in self.named_parameters():
            if name.endswith("bias"):
                nn.init.zeros_(p)
            elif "ln" in name:
                nn.init.ones_(p)
            else:
                std = 0.02 / math.sqrt(2 * n_layer) if name.endswith("c_proj.weight") or name.endswith("mlp.2.weight") else 0.02
                nn.init.normal_(p, 0.0, std)

    def forward(self, idx, targets):
        T = idx.size(1)
        x = self.wte(idx) + self.wpe(torch.arange(T))
        for block in self.h:
            x = block(x)
        logits = F.linear(self.ln_f(x), self.wte.weight)
        return F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1))


def corpus(root):
    names = sorted(os.listdir(root))
    seen, data = set(), bytearray()
    for n in names:
        p = os.path.join(root, n)
        if n.endswith(".dat") or not os.path.isfile(p):
            continue
        real = os.path.realpath(p)
        if real in seen or real.endswith(".dat"):
            continue
        seen.add(real)
        with open(p, "rb") as f:
            data += f.read()
    return torch.tensor(list(data[: int(len(data) * 0.9)]), dtype=torch.int64)


def main():
    ap = argparse.ArgumentParser()
    for k, v in dict(threads=1, n_layer=4, n_head=4, n_embd=128, block_size=64, batch=16, steps=30, warmup_steps=5,
                     seed=0).items():
        ap.add_argument("--" + k.replace("_", "-"), type=int, default=v)
    ap.add_argument("--data", default="/usr/share/games/fortunes")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    text = corpus(a.data)
    model = GPT(256, a.block_size, a.n_layer, a.n_head, a.n_embd)
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2 and "wte" not in n and "wpe" not in n]
    rest = [p for n, p in model.named_parameters() if not (p.dim() >= 2 and "wte" not in n and "wpe" not in n)]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": rest, "weight_decay": 0.0}],
                            lr=1e-3, betas=(0.9, 0.99))
    total = a.steps + a.warmup_steps
    starts = torch.randint(len(text) - a.block_size - 1, (total, a.batch))
    windows = [torch.stack([text[s:s + a.block_size + 1] for s in row.tolist()]) for row in starts]
    batches = [(w[:, :-1].contiguous(), w[:, 1:].contiguous()) for w in windows]
    loss = None
    for i, (x, y) in enumerate(batches):
        if i == a.warmup_steps:
            t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss = model(x, y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
    dt = time.perf_counter() - t0
    tokens = a.steps * a.batch * a.block_size
    print(json.dumps(dict(impl="torch", threads=a.threads, ranks=1, tp=1, n_layer=a.n_layer, n_head=a.n_head,
                          n_embd=a.n_embd, block_size=a.block_size, batch=a.batch, steps=a.steps,
                          params=sum(p.numel() for p in model.parameters()), seconds=round(dt, 4),
                          step_ms=round(dt / a.steps * 1e3, 3), tokens_per_s=round(tokens / dt, 1),
                          last_loss=round(loss.item(), 4), torch=torch.__version__)), flush=True)


if __name__ == "__main__":
    main()
