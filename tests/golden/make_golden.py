#!/usr/bin/python3
"""Writes the golden files that tests/nn/test_golden.cpp checks Braid against.

Run with Debian's interpreter, which has python3-torch and python3-numpy:

    /usr/bin/python3 tests/golden/make_golden.py

It writes tests/data/golden/{mlp,embedding,optim,numerics,transformer}.safetensors, which are committed: CI reads them and
never needs PyTorch. Naming cases writes only those files, so adding a case leaves the others' bytes alone:

    /usr/bin/python3 tests/golden/make_golden.py numerics Debian packages no Python safetensors, so the format is written (and read back, to check the
writer) here with json and numpy.

The inputs and initial weights are drawn in float32 and stored as float32; Braid loads them into its modules
rather than initialising its own. Every expected value is computed in float64 from those exact float32 values
and then rounded to float32, so a test comparing Braid's float32 results sees only Braid's own rounding error,
not PyTorch's as well. The script also reruns everything in float32 and prints the largest difference from the
float64 reference per tensor, which is the size of error float32 arithmetic makes on these problems: the C++
test's tolerances should sit comfortably above it.

Names follow Braid's module naming: nn.Sequential's children are "0", "1", ..., so "0.weight" is the first
Linear's weight in PyTorch's state_dict and in Braid's; every name carries its case's prefix.
"""

import json
import math
import os
import struct
import sys

import numpy as np
import torch
from torch import nn
import torch.nn.functional as F

OUT_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data", "golden")
SEED = 20240611
STEPS = 10

# ---------------------------------------------------------------------------------------------- safetensors

_DTYPES = {np.dtype("float32"): "F32", np.dtype("float64"): "F64", np.dtype("int64"): "I64"}
_NP_DTYPES = {v: k for k, v in _DTYPES.items()}


def write_safetensors(path, tensors, metadata):
    """tensors: name -> numpy array (F32, F64 or I64). Layout: u64 little-endian header length, the JSON header
    padded with spaces to a multiple of 8, then each tensor's little-endian bytes in header order."""
    header = {"__metadata__": {k: str(v) for k, v in metadata.items()}}
    blobs, offset = [], 0
    for name in sorted(tensors):
        a = np.array(tensors[name], order="C")  # not ascontiguousarray: that makes 0-d arrays 1-d
        dtype = _DTYPES[a.dtype]
        raw = a.astype(a.dtype.newbyteorder("<"), copy=False).tobytes()
        header[name] = {"dtype": dtype, "shape": list(a.shape), "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for raw in blobs:
            f.write(raw)
    os.replace(tmp, path)


def read_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n].decode("utf-8"))
    metadata = header.pop("__metadata__", {})
    base = 8 + n
    out = {}
    end_max = 0
    for name, info in header.items():
        b, e = info["data_offsets"]
        dtype = _NP_DTYPES[info["dtype"]].newbyteorder("<")
        count = int(np.prod(info["shape"], dtype=np.int64))
        assert e - b == count * dtype.itemsize, name
        out[name] = np.frombuffer(data[base + b : base + e], dtype=dtype).reshape(tuple(info["shape"])).astype(
            dtype.newbyteorder("="))
        end_max = max(end_max, e)
    assert base + end_max == len(data), "trailing bytes"
    return out, metadata


# ---------------------------------------------------------------------------------------------- models


def make_mlp():
    # Every activation appears once; Dropout runs in eval mode (the identity), so the outputs are deterministic.
    return nn.Sequential(
        nn.Linear(12, 16),  # 0
        nn.LayerNorm(16),  # 1
        nn.GELU(),  # 2 (exact, erf)
        nn.Linear(16, 16),  # 3
        nn.ReLU(),  # 4
        nn.Linear(16, 16),  # 5
        nn.Tanh(),  # 6
        nn.Linear(16, 16),  # 7
        nn.Sigmoid(),  # 8
        nn.Dropout(p=0.3),  # 9
        nn.Linear(16, 10),  # 10
    )


class EmbeddingModel(nn.Module):
    """ids [B, T] -> Embedding(20, 6) -> mean over T -> Linear(6, 3)."""

    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(20, 6)
        self.fc = nn.Linear(6, 3)

    def forward(self, ids):
        return self.fc(self.emb(ids).mean(dim=1))


def f32(t):
    """A tensor as float32 numpy (the stored form of every float)."""
    return t.detach().to(torch.float32).cpu().numpy().copy()


def params_of(model):
    return {name: p for name, p in model.named_parameters()}


# ---------------------------------------------------------------------------------------------- cases


def mlp_case(dtype, x32, y32, t32, init):
    """Forward, each loss and each loss's gradients, computed in `dtype` from the float32 data."""
    model = make_mlp()
    model.load_state_dict({k: torch.from_numpy(v) for k, v in init.items()})
    model.to(dtype).eval()
    out = {}
    relu_margin = math.inf
    for loss_name in ("ce", "nll", "mse"):
        model.zero_grad(set_to_none=True)
        x = torch.from_numpy(x32).to(dtype).requires_grad_(True)
        h = x
        for i, layer in enumerate(model):
            if isinstance(layer, nn.ReLU):
                relu_margin = min(relu_margin, h.abs().min().item())
            h = layer(h)
            out[f"mlp.activation.{i}"] = h
        logits = h
        log_probs = F.log_softmax(logits, dim=1)
        target = torch.from_numpy(y32)
        mse_target = torch.from_numpy(t32).to(dtype)
        losses = {
            "ce": F.cross_entropy(logits, target),
            "nll": F.nll_loss(log_probs, target),
            "mse": F.mse_loss(logits, mse_target),
        }
        for k, v in losses.items():
            out[f"mlp.loss.{k}"] = v
        out["mlp.logits"] = logits
        out["mlp.log_softmax"] = log_probs
        losses[loss_name].backward()
        for name, p in model.named_parameters():
            out[f"mlp.grad.{loss_name}.{name}"] = p.grad.clone()
        out[f"mlp.grad.{loss_name}.input"] = x.grad.clone()
    return out, relu_margin


def embedding_case(dtype, ids, target, init):
    model = EmbeddingModel()
    model.load_state_dict({k: torch.from_numpy(v) for k, v in init.items()})
    model.to(dtype)
    ids_t = torch.from_numpy(ids)
    pooled = model.emb(ids_t).mean(dim=1)
    logits = model.fc(pooled)
    loss = F.cross_entropy(logits, torch.from_numpy(target))
    loss.backward()
    out = {"embedding.pooled": pooled, "embedding.logits": logits, "embedding.loss": loss}
    for name, p in model.named_parameters():
        out[f"embedding.grad.{name}"] = p.grad.clone()
    return out


def train(dtype, x32, y32, init, make_optimizer, prefix):
    """STEPS steps on cross-entropy over one fixed batch; the loss recorded at each step is before its update."""
    model = make_mlp()
    model.load_state_dict({k: torch.from_numpy(v) for k, v in init.items()})
    model.to(dtype).eval()
    opt = make_optimizer(model.parameters())
    x = torch.from_numpy(x32).to(dtype)
    target = torch.from_numpy(y32)
    losses = []
    out = {}
    relu_margin = math.inf
    for step in range(1, STEPS + 1):
        opt.zero_grad(set_to_none=True)
        relu_margin = min(relu_margin, model[:4](x).abs().min().item())
        loss = F.cross_entropy(model(x), target)
        loss.backward()
        opt.step()
        losses.append(loss.detach())
        if step == 1:
            for name, p in model.named_parameters():
                out[f"{prefix}.step1.param.{name}"] = p.detach().clone()
    for name, p in model.named_parameters():
        out[f"{prefix}.param.{name}"] = p.detach().clone()
    out[f"{prefix}.losses"] = torch.stack(losses)
    return out, relu_margin


def numerics_case(dtype, logits32, target, gelu_x32, gelu_w32):
    """Log-softmax and cross-entropy of logits in the hundreds, and both GELU forms with their gradients."""
    out = {}
    logits = torch.from_numpy(logits32).to(dtype).requires_grad_(True)
    log_probs = F.log_softmax(logits, dim=1)
    loss = F.cross_entropy(logits, torch.from_numpy(target))
    loss.backward()
    out["large_logits.log_softmax"] = log_probs
    out["large_logits.loss.ce"] = loss
    out["large_logits.grad.ce"] = logits.grad.clone()
    for approximate in ("none", "tanh"):
        x = torch.from_numpy(gelu_x32).to(dtype).requires_grad_(True)
        y = F.gelu(x, approximate=approximate)
        y.backward(torch.from_numpy(gelu_w32).to(dtype))
        out[f"gelu.{approximate}"] = y
        out[f"gelu.grad.{approximate}"] = x.grad.clone()
    return out


def make_numerics_file(metadata):
    """Its own generator, so this case never shifts the random draws of the others."""
    gen = torch.Generator().manual_seed(SEED + 8)
    # Each row: one class with nearly all the mass (log-probability about -1e-5 to -1e-4) or a few close ones,
    # around +-300 and 1000, where rounding max + log(sum) to float32 first loses those log-probabilities.
    base = torch.tensor([[300.0], [300.0], [310.0], [-300.0], [1000.0], [300.0]])
    offsets = torch.tensor([
        [0.0, -10.0, -15.0, -20.0, -30.0, -50.0],
        [0.0, -0.5, -10.0, -50.0, 1.25, -4.0],
        [0.0, -12.0, -13.0, -13.5, -15.0, -110.0],
        [0.0, -10.0, -5.5, 0.25, -20.0, -14.0],
        [0.0, -11.0, -12.5, -15.0, -9.75, -100.0],
        [0.0, 0.0, -14.0, -1.0, -30.0, -12.0],
    ])
    logits = f32(base + offsets + 0.01 * torch.randn(6, 6, generator=gen))
    target = torch.tensor([0, 4, 0, 3, 1, 2], dtype=torch.int64).numpy().copy()
    # GELU over [-6, 6] (where the two forms differ most, up to 5e-4 near |x| = 2.7) and a few larger values.
    gelu_x = f32(torch.cat([torch.linspace(-6, 6, 49), torch.tensor([-12.0, -8.5, 8.5, 12.0])]))
    gelu_w = f32(torch.randn(gelu_x.shape[0], generator=gen))
    ref = numerics_case(torch.float64, logits, target, gelu_x, gelu_w)
    low = numerics_case(torch.float32, logits, target, gelu_x, gelu_w)
    report_float32_error("numerics", ref, low)
    out = {"large_logits.input": logits, "large_logits.target": target, "gelu.input": gelu_x,
           "gelu.grad_output": gelu_w}
    out.update(finalize(ref))
    save("numerics.safetensors", out, dict(metadata, case="numerics"))


class CausalSelfAttention(nn.Module):
    """nanoGPT's: c_attn makes q, k, v for all heads (split(C, dim=2), each .view(B, T, H, D).transpose(1, 2)),
    the attention is written out (PyTorch 1.13 has no public scaled_dot_product_attention), c_proj mixes heads."""

    def __init__(self, c, heads):
        super().__init__()
        self.c_attn = nn.Linear(c, 3 * c)
        self.c_proj = nn.Linear(c, c)
        self.heads = heads

    def forward(self, x):
        b, t, c = x.shape
        q, k, v = self.c_attn(x).split(c, dim=2)
        q, k, v = (z.view(b, t, self.heads, c // self.heads).transpose(1, 2) for z in (q, k, v))
        y = attention(q, k, v, True, None)
        return self.c_proj(y.transpose(1, 2).contiguous().view(b, t, c))


class Block(nn.Module):
    """A pre-LayerNorm GPT block: x + attn(ln_1(x)), then x + mlp(ln_2(x)); mlp's children are "0", "1", "2" as
    in an nn::Sequential."""

    def __init__(self, c, heads):
        super().__init__()
        self.ln_1 = nn.LayerNorm(c)
        self.attn = CausalSelfAttention(c, heads)
        self.ln_2 = nn.LayerNorm(c)
        self.mlp = nn.Sequential(nn.Linear(c, 4 * c), nn.GELU(approximate="tanh"), nn.Linear(4 * c, c))

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


def attention(q, k, v, causal, scale):
    """softmax(q k^T * scale, masked with -inf above the diagonal when causal) v, as nanoGPT writes it."""
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    att = (q @ k.transpose(-2, -1)) * scale
    if causal:
        t, s = q.shape[-2], k.shape[-2]
        mask = torch.tril(torch.ones(t, s, dtype=torch.bool))
        att = att.masked_fill(~mask, float("-inf"))
    return torch.softmax(att, dim=-1) @ v


ATTENTION_CASES = {
    # name: (B, H, T, S, D, Dv, causal, scale)
    "causal": (2, 3, 5, 5, 4, 4, True, None),
    "full": (2, 2, 4, 7, 8, 6, False, 0.3),
}


def transformer_case(dtype, data, init):
    """Attention forward and backward per case, and the GPT block's output and gradients, in `dtype`."""
    out = {}
    for name, (_, _, _, _, _, _, causal, scale) in ATTENTION_CASES.items():
        p = f"attention.{name}"
        q, k, v = (torch.from_numpy(data[f"{p}.{w}"]).to(dtype).requires_grad_(True) for w in ("query", "key", "value"))
        y = attention(q, k, v, causal, scale)
        y.backward(torch.from_numpy(data[f"{p}.grad_output"]).to(dtype))
        out[f"{p}.output"] = y
        for w, t in (("query", q), ("key", k), ("value", v)):
            out[f"{p}.grad.{w}"] = t.grad.clone()
    block = Block(16, 4)
    block.load_state_dict({k: torch.from_numpy(v) for k, v in init.items()})
    block.to(dtype)
    x = torch.from_numpy(data["block.input"]).to(dtype).requires_grad_(True)
    y = block(x)
    y.backward(torch.from_numpy(data["block.grad_output"]).to(dtype))
    out["block.output"] = y
    for name, prm in block.named_parameters():
        out[f"block.grad.{name}"] = prm.grad.clone()
    out["block.grad.input"] = x.grad.clone()
    return out


def make_transformer_file(metadata):
    """Its own generator, so this case never shifts the random draws of the others."""
    gen = torch.Generator().manual_seed(SEED + 9)
    torch.manual_seed(SEED + 9)  # the block's default initialisation
    data = {}
    for name, (b, h, t, s, d, dv, _, _) in ATTENTION_CASES.items():
        p = f"attention.{name}"
        for w, shape in (("query", (b, h, t, d)), ("key", (b, h, s, d)), ("value", (b, h, s, dv)),
                         ("grad_output", (b, h, t, dv))):
            data[f"{p}.{w}"] = f32(torch.randn(*shape, generator=gen))
    block = Block(16, 4)
    with torch.no_grad():  # LayerNorm's affine made non-trivial
        for ln in (block.ln_1, block.ln_2):
            ln.weight.copy_(1 + 0.2 * torch.randn(16, generator=gen))
            ln.bias.copy_(0.2 * torch.randn(16, generator=gen))
    init = {k: f32(v) for k, v in block.state_dict().items()}
    data["block.input"] = f32(torch.randn(2, 6, 16, generator=gen))
    data["block.grad_output"] = f32(torch.randn(2, 6, 16, generator=gen))
    ref = transformer_case(torch.float64, data, init)
    low = transformer_case(torch.float32, data, init)
    report_float32_error("transformer", ref, low)
    out = dict(data)
    out.update({f"block.param.{k}": v for k, v in init.items()})
    out.update(finalize(ref))
    save("transformer.safetensors", out, dict(metadata, case="transformer"))


def sgd(params):
    return torch.optim.SGD(params, lr=0.1, momentum=0.9)


def adamw(params):
    return torch.optim.AdamW(params, lr=1e-2, weight_decay=0.01)


# ---------------------------------------------------------------------------------------------- driver


def report_float32_error(name, ref, f32run):
    """Prints, per tensor, the largest |float32 - float64| PyTorch itself makes, relative to the tensor's scale."""
    print(f"{name}: float32 PyTorch vs float64 reference")
    worst = 0.0
    for k in sorted(ref):
        a = ref[k].detach().to(torch.float64)
        b = f32run[k].detach().to(torch.float64)
        diff = (a - b).abs().max().item()
        scale = max(a.abs().max().item(), 1e-30)
        worst = max(worst, diff / scale)
        print(f"  {k:40s} max|diff| {diff:.3e}  max|ref| {scale:.3e}  rel {diff / scale:.3e}")
    print(f"  worst relative to scale: {worst:.3e}")


def finalize(tensors):
    out = {}
    for k, v in tensors.items():
        if isinstance(v, np.ndarray):
            out[k] = v
        elif v.dtype == torch.int64:
            out[k] = v.numpy().copy()
        else:
            out[k] = f32(v)
    return out


def save(name, tensors, metadata):
    os.makedirs(OUT_DIR, exist_ok=True)
    path = os.path.join(OUT_DIR, name)
    write_safetensors(path, tensors, metadata)
    back, meta_back = read_safetensors(path)
    assert set(back) == set(tensors), name
    for k, v in tensors.items():
        assert back[k].dtype == v.dtype and back[k].shape == v.shape and np.array_equal(back[k], v), (name, k)
    assert meta_back == {k: str(v) for k, v in metadata.items()}
    print(f"wrote {os.path.relpath(path)}: {len(tensors)} tensors, {os.path.getsize(path)} bytes")


CASES = ("mlp", "embedding", "optim", "numerics", "transformer")


def main(argv):
    cases = argv or list(CASES)
    unknown = [c for c in cases if c not in CASES]
    if unknown:
        print(f"unknown case(s) {unknown}; the cases are {list(CASES)}", file=sys.stderr)
        return 2
    torch.set_num_threads(1)
    torch.manual_seed(SEED)
    metadata = {
        "generator": "tests/golden/make_golden.py",
        "torch": torch.__version__,
        "seed": SEED,
        "reference": "computed in float64 from the stored float32 inputs and weights, rounded to float32",
    }

    # ---- mlp: data and initial weights (PyTorch's default init; LayerNorm's affine made non-trivial)
    mlp = make_mlp()
    with torch.no_grad():
        mlp[1].weight.copy_(1 + 0.2 * torch.randn(16))
        mlp[1].bias.copy_(0.2 * torch.randn(16))
    mlp_init = {k: f32(v) for k, v in mlp.state_dict().items()}
    x = f32(torch.randn(8, 12))
    y = torch.randint(0, 10, (8,), dtype=torch.int64).numpy().copy()
    t = f32(torch.randn(8, 10))

    ref, margin = mlp_case(torch.float64, x, y, t, mlp_init)
    low, _ = mlp_case(torch.float32, x, y, t, mlp_init)
    report_float32_error("mlp", ref, low)
    assert margin > 1e-4, f"a ReLU input is {margin:.2e} from its kink; pick another seed"
    mlp_file = {"mlp.input": x, "mlp.target.class": y, "mlp.target.mse": t}
    mlp_file.update({f"mlp.param.{k}": v for k, v in mlp_init.items()})
    mlp_file.update(finalize(ref))
    if "mlp" in cases:
        save("mlp.safetensors", mlp_file, dict(metadata, case="mlp"))

    # ---- embedding: repeated ids within and across rows, and some rows of the table never used
    emb = EmbeddingModel()
    emb_init = {k: f32(v) for k, v in emb.state_dict().items()}
    ids = torch.randint(0, 20, (4, 5), dtype=torch.int64)
    ids[0, 3] = ids[0, 1]
    ids[2, 0] = ids[0, 1]
    ids[3, 4] = ids[3, 2]
    ids = ids.numpy().copy()
    target = torch.randint(0, 3, (4,), dtype=torch.int64).numpy().copy()
    assert len(np.unique(ids)) < ids.size and len(np.unique(ids)) < 20
    ref = embedding_case(torch.float64, ids, target, emb_init)
    low = embedding_case(torch.float32, ids, target, emb_init)
    report_float32_error("embedding", ref, low)
    emb_file = {"embedding.ids": ids, "embedding.target": target}
    emb_file.update({f"embedding.param.{k}": v for k, v in emb_init.items()})
    emb_file.update(finalize(ref))
    if "embedding" in cases:
        save("embedding.safetensors", emb_file, dict(metadata, case="embedding"))

    # ---- optim: the mlp from the same initial weights, trained on cross-entropy over the same fixed batch
    opt_file = {"optim.input": x, "optim.target": y}
    opt_file.update({f"optim.param.{k}": v for k, v in mlp_init.items()})
    for prefix, make in (("optim.sgd", sgd), ("optim.adamw", adamw)):
        ref, margin = train(torch.float64, x, y, mlp_init, make, prefix)
        low, _ = train(torch.float32, x, y, mlp_init, make, prefix)
        report_float32_error(prefix, ref, low)
        assert margin > 1e-4, f"{prefix}: a ReLU input is {margin:.2e} from its kink; pick another seed"
        opt_file.update(finalize(ref))
    if "optim" in cases:
        save("optim.safetensors", opt_file,
             dict(metadata, case="optim", sgd="lr=0.1 momentum=0.9", adamw="lr=0.01 weight_decay=0.01",
                  steps=STEPS))

    if "numerics" in cases:
        make_numerics_file(metadata)
    if "transformer" in cases:
        make_transformer_file(metadata)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
