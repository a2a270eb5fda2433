#!/usr/bin/python3
"""The PyTorch peer of bench_engine (run with Debian's /usr/bin/python3, python3-torch 1.13 with
libopenblas0-openmp installed; ../shared/FACTS.md). Builds the model from an iotnas spec JSON
(`bench_engine spec ref:NAME` or `iotnas spec ref:NAME`) and runs the iotnas recipe:

  peer_torch.py train   --spec FILE [--epochs 2 --seed 0 --threads 2 --batch 128 --lr 0.05]
      SGD momentum 0.9, lr cosine to 0 over all steps (per step, as iotnas), no augmentation,
      inputs normalised with the training set's mean and standard deviation, PyTorch's default
      initialisation (uniform +-1/sqrt(fan_in), the distribution iotnas draws from). Images/s per
      epoch over the training steps only; test accuracy at the end.
  peer_torch.py steps   --spec FILE [--threads 2 --batch 128 --samples 200]
      training steps (forward, backward, SGD update) on random images: median ms per step, the
      counterpart of `bench_engine steps` (quick, robust to a noisy machine: medians).
  peer_torch.py latency --spec FILE [--samples 2000]
      batch-1 inference on 1 thread, TorchScript (trace + freeze), median of single forwards.

Each prints one JSON line. Supports the ops of the plain reference models (conv2d, relu,
max_pool, avg_pool, global_avg_pool, flatten, dense) in a chain.
"""
import argparse
import gzip
import json
import math
import os
import struct
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

DATA = "/usr/share/datasets/fashion-mnist"
PEAK_PER_CORE = 115e9


def read_idx(path):
    with gzip.open(path, "rb") as f:
        raw = f.read()
    _, _, ndim = struct.unpack(">HBB", raw[:4])
    dims = struct.unpack(">" + "I" * ndim, raw[4:4 + 4 * ndim])
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def load():
    xtr = read_idx(os.path.join(DATA, "train-images-idx3-ubyte.gz")).astype(np.float32) / 255
    ytr = read_idx(os.path.join(DATA, "train-labels-idx1-ubyte.gz")).astype(np.int64)
    xte = read_idx(os.path.join(DATA, "t10k-images-idx3-ubyte.gz")).astype(np.float32) / 255
    yte = read_idx(os.path.join(DATA, "t10k-labels-idx1-ubyte.gz")).astype(np.int64)
    mean, std = float(xtr.mean()), float(xtr.std())
    prep = lambda x: torch.from_numpy((x - mean) / std).unsqueeze(1).contiguous()
    return prep(xtr), torch.from_numpy(ytr), prep(xte), torch.from_numpy(yte)


def pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


def build(spec):
    c, h, w = spec["input"]
    mods, flops = [], 0
    for l in spec["layers"]:
        if l.get("in") not in (None, []):
            raise SystemExit(f"peer_torch: layer {l['name']}: only chains are supported")
        op = l["op"]
        if op == "conv2d":
            k, s = pair(l["kernel"]), pair(l.get("stride", 1))
            p = pair(l.get("padding", 0))
            g = l.get("groups", 1)
            m = nn.Conv2d(c, l["out_channels"], k, s, p, groups=g, bias=l.get("bias", True))
            h = (h + 2 * p[0] - k[0]) // s[0] + 1
            w = (w + 2 * p[1] - k[1]) // s[1] + 1
            flops += 2 * l["out_channels"] * h * w * k[0] * k[1] * (c // g)
            c = l["out_channels"]
        elif op == "relu":
            m = nn.ReLU()
        elif op in ("max_pool", "avg_pool"):
            k = pair(l["kernel"])
            s = pair(l.get("stride", l["kernel"]))
            p = pair(l.get("padding", 0))
            m = (nn.MaxPool2d if op == "max_pool" else nn.AvgPool2d)(k, s, p)
            h = (h + 2 * p[0] - k[0]) // s[0] + 1
            w = (w + 2 * p[1] - k[1]) // s[1] + 1
        elif op == "global_avg_pool":
            m = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
            h = w = 1
        elif op == "flatten":
            m = nn.Flatten()
            c, h, w = c * h * w, 1, 1
        elif op == "dense":
            m = nn.Sequential(nn.Flatten(), nn.Linear(c * h * w, l["units"], bias=l.get("bias", True)))
            flops += 2 * c * h * w * l["units"]
            c, h, w = l["units"], 1, 1
        else:
            raise SystemExit(f"peer_torch: op {op} is not supported here")
        mods.append(m)
    return nn.Sequential(*mods), flops


def train(a, spec):
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    model, flops = build(spec)
    xtr, ytr, xte, yte = load()
    n = xtr.shape[0]
    steps_per_epoch = math.ceil(n / a.batch)
    total = steps_per_epoch * a.epochs
    opt = torch.optim.SGD(model.parameters(), lr=a.lr, momentum=0.9)
    gen = torch.Generator().manual_seed(a.seed)
    step, ips = 0, []
    for _ in range(a.epochs):
        model.train()
        perm = torch.randperm(n, generator=gen)
        t0 = time.perf_counter()
        for i in range(0, n, a.batch):
            idx = perm[i:i + a.batch]
            for g in opt.param_groups:
                g["lr"] = 0.5 * a.lr * (1 + math.cos(math.pi * min(1.0, step / total)))
            opt.zero_grad(set_to_none=True)
            F.cross_entropy(model(xtr[idx]), ytr[idx]).backward()
            opt.step()
            step += 1
        ips.append(n / (time.perf_counter() - t0))
    model.eval()
    correct = 0
    with torch.no_grad():
        for i in range(0, xte.shape[0], 256):
            correct += (model(xte[i:i + 256]).argmax(1) == yte[i:i + 256]).sum().item()
    best = max(ips[1:]) if len(ips) > 1 else ips[0]
    print(json.dumps({"model": spec.get("name"), "peer": "torch " + torch.__version__,
                      "threads": a.threads, "batch": a.batch, "seed": a.seed, "flops": flops,
                      "params": sum(p.numel() for p in model.parameters()),
                      "epoch_images_per_second": ips, "images_per_second": best,
                      "gflops": 3 * flops * best / 1e9,
                      "peak_fraction": 3 * flops * best / (PEAK_PER_CORE * a.threads),
                      "test_accuracy": correct / xte.shape[0]}), flush=True)


def steps(a, spec):
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    model, flops = build(spec)
    c, h, w = spec["input"]
    x = torch.rand(a.batch, c, h, w) - 0.5
    y = torch.randint(0, 10, (a.batch,))
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)

    def step():
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        opt.step()

    for _ in range(10):
        step()
    ms = []
    for _ in range(a.samples or 200):
        t0 = time.perf_counter()
        step()
        ms.append((time.perf_counter() - t0) * 1e3)
    ms.sort()
    med = ms[len(ms) // 2]
    print(json.dumps({"model": spec.get("name"), "peer": "torch " + torch.__version__,
                      "threads": a.threads, "step_ms": med, "p10_ms": ms[len(ms) // 10],
                      "images_per_second": a.batch / med * 1e3,
                      "gflops": 3 * flops * a.batch / med / 1e6}), flush=True)


def latency(a, spec):
    torch.set_num_threads(1)
    torch.manual_seed(a.seed)
    model, flops = build(spec)
    model.eval()
    _, _, xte, _ = load()
    xs = [xte[i:i + 1].clone() for i in range(256)]
    with torch.no_grad():
        m = torch.jit.freeze(torch.jit.trace(model, xs[0]))
        for k in range(500):
            m(xs[k % 256])
        us = []
        for k in range(a.samples or 2000):
            t0 = time.perf_counter()
            m(xs[k % 256])
            us.append((time.perf_counter() - t0) * 1e6)
    us.sort()
    floor_us = flops / PEAK_PER_CORE * 1e6
    print(json.dumps({"model": spec.get("name"), "peer": "torchscript " + torch.__version__,
                      "flops": flops, "median_us": us[len(us) // 2], "p10_us": us[len(us) // 10],
                      "p90_us": us[len(us) * 9 // 10], "floor_us": floor_us,
                      "floor_multiple": us[len(us) // 2] / floor_us}), flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["train", "steps", "latency"])
    ap.add_argument("--spec", required=True)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--lr", type=float, default=0.05)
    ap.add_argument("--samples", type=int, default=None)
    a = ap.parse_args()
    with open(a.spec) as f:
        spec = json.load(f)
    {"train": train, "steps": steps, "latency": latency}[a.mode](a, spec)


if __name__ == "__main__":
    main()
