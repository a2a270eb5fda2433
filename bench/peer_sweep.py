#!/usr/bin/python3
"""The PyTorch peer for bench_sweep: float32 evaluation at batch 128 and a precision sweep that
rounds the input and the outputs of conv, linear and pooling layers to T(w,t) by bit manipulation
(normal range, ties to even, overflow to Inf; cheaper than iotnas's rounding of every map).

Usage: peer_sweep.py --iotnas build/release/apps/iotnas [--models plain-1k,...] [--threads 2]
                     [--types N]   (the first N types of a stride over the 184; 0 = all 184)
One JSON object per model on stdout; per-type seconds x 184 gives `sweep_seconds_184`
(measured when --types 0, extrapolated from N types otherwise: says which in `sweep_measured`).
Run with Debian's python3-torch and libopenblas0-openmp (see ../shared/FACTS.md)."""
import argparse, gzip, json, subprocess, time, warnings
import numpy as np
import torch

p = argparse.ArgumentParser()
p.add_argument("--iotnas", required=True)
p.add_argument("--models", default="plain-1k,plain-14k,plain-120k")
p.add_argument("--threads", type=int, default=2)
p.add_argument("--types", type=int, default=12)
p.add_argument("--reps", type=int, default=5)
p.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
a = p.parse_args()
torch.set_num_threads(a.threads)
warnings.filterwarnings("ignore", message="Lazy modules")


def idx(path):
    with gzip.open(path, "rb") as f:
        raw = f.read()
    nd = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(nd)]
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * nd).reshape(dims)


train = idx(a.data + "/train-images-idx3-ubyte.gz").astype(np.float32) / 255
mean, std = float(train.mean()), float(train.std())
test = (idx(a.data + "/t10k-images-idx3-ubyte.gz").astype(np.float32) / 255 - mean) / std
images = torch.from_numpy(test).unsqueeze(1).contiguous()


class Round(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.wt = None

    def forward(self, x):
        if self.wt is None:
            return x
        w, t = self.wt
        shift = 23 - t
        b = x.contiguous().view(torch.int32)
        if shift > 0:
            lsb = (b >> shift) & 1
            b = (b + ((1 << (shift - 1)) - 1) + lsb) & ~((1 << shift) - 1)
        y = b.view(torch.float32)
        top = 2.0 ** (2 ** (w - 1))  # 2^(bias+1)
        return torch.where(y.abs() >= top, torch.copysign(torch.full_like(y, float("inf")), y), y)


def build(spec):
    c, h, w = spec["input"]
    mods = [Round()]
    for l in spec["layers"]:
        op = l["op"]
        if op == "conv2d":
            k = l["kernel"]
            mods += [torch.nn.Conv2d(c, l["out_channels"], k, l.get("stride", 1), l.get("padding", 0),
                                     groups=l.get("groups", 1), bias=l.get("bias", True)), Round()]
            c = l["out_channels"]
        elif op == "relu":
            mods.append(torch.nn.ReLU())
        elif op == "max_pool":
            mods += [torch.nn.MaxPool2d(l["kernel"], l.get("stride", l["kernel"])), Round()]
        elif op == "global_avg_pool":
            mods += [torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), Round()]
        elif op == "flatten":
            mods.append(torch.nn.Flatten())
        elif op == "dense":
            mods += [torch.nn.LazyLinear(l["units"], bias=l.get("bias", True)), Round()]
        else:
            raise SystemExit(f"peer_sweep.py: op {op} not supported")
    return torch.nn.Sequential(*mods).eval()


def evaluate(model):
    t0 = time.perf_counter()
    with torch.no_grad():
        for i in range(0, images.shape[0], 128):
            model(images[i:i + 128])
    return time.perf_counter() - t0


grid = [(w, t) for w in range(1, 9) for t in range(1, 24)]
for name in a.models.split(","):
    spec = json.loads(subprocess.check_output([a.iotnas, "spec", "ref:" + name]))
    model = build(spec)
    rounders = [m for m in model if isinstance(m, Round)]
    with torch.no_grad():
        model(images[:2])  # materialise lazy layers
    evaluate(model)
    plain = sorted(evaluate(model) for _ in range(a.reps))[a.reps // 2]
    types = grid if a.types == 0 else grid[:: max(1, len(grid) // a.types)][: a.types]
    t0 = time.perf_counter()
    for wt in types:
        for r in rounders:
            r.wt = wt
        evaluate(model)
    per_type = (time.perf_counter() - t0) / len(types)
    for r in rounders:
        r.wt = None
    print(json.dumps({"model": name, "threads": a.threads, "torch": torch.__version__,
                      "float32_seconds": plain, "float32_images_per_second": images.shape[0] / plain,
                      "rounded_seconds_per_type": per_type, "types_timed": len(types),
                      "sweep_seconds_184": per_type * 184 + plain,
                      "sweep_measured": a.types == 0}), flush=True)
