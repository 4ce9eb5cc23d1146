"""train.ddpm's training step in PyTorch eager: the same U-Net
(crates/voxflow-torch/src/diffusion/unet.rs), batch, loss and AdamW, on the
CPU. Prints images/s over the steps after the first 3.

    python benches/ddpm_bench.py SIZE CHANNELS EMBED_DIM BATCH STEPS THREADS
"""
import math, sys, time
import torch
import torch.nn as nn
import torch.nn.functional as F

size, C, d, B, steps, threads = (int(a) for a in sys.argv[1:7])
torch.set_num_threads(threads)
torch.manual_seed(0)
K, T = 10, 1000


def groups(c):
    return next(g for g in (8, 4, 2, 1) if c % g == 0)


class Res(nn.Module):
    def __init__(self, i, o, e):
        super().__init__()
        self.norm1, self.conv1 = nn.GroupNorm(groups(i), i), nn.Conv2d(i, o, 3, padding=1)
        self.emb = nn.Linear(e, o)
        self.norm2, self.conv2 = nn.GroupNorm(groups(o), o), nn.Conv2d(o, o, 3, padding=1)
        self.skip = nn.Conv2d(i, o, 1) if i != o else None

    def forward(self, x, emb):
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.emb(emb)[:, :, None, None]
        h = self.conv2(F.silu(self.norm2(h)))
        return h + (self.skip(x) if self.skip is not None else x)


class UNet(nn.Module):
    def __init__(self):
        super().__init__()
        e = 4 * C
        self.class_table = nn.Parameter(torch.randn(K, d))
        self.null = nn.Parameter(torch.randn(1, d))
        self.conv_in = nn.Conv2d(1, C, 3, padding=1)
        self.time1, self.time2, self.class_proj = nn.Linear(C, e), nn.Linear(e, e), nn.Linear(d, e)
        self.res1, self.down1 = Res(C, C, e), nn.Conv2d(C, C, 3, stride=2, padding=1)
        self.res2, self.down2 = Res(C, 2 * C, e), nn.Conv2d(2 * C, 2 * C, 3, stride=2, padding=1)
        self.mid, self.up2, self.up1 = Res(2 * C, 2 * C, e), Res(4 * C, 2 * C, e), Res(3 * C, C, e)
        self.norm_out, self.conv_out = nn.GroupNorm(groups(C), C), nn.Conv2d(C, 1, 3, padding=1)

    def forward(self, x, t, y):
        half = C // 2
        freqs = torch.exp(torch.arange(half, dtype=torch.float32) * (-math.log(10000.0) / half))
        args = t.float()[:, None] * freqs[None]
        temb = self.time2(F.silu(self.time1(torch.cat([args.sin(), args.cos()], 1))))
        emb = F.silu(temb + self.class_proj(torch.cat([self.class_table, self.null])[y]))
        h1 = self.res1(self.conv_in(x), emb)
        h2 = self.res2(self.down1(h1), emb)
        m = self.mid(self.down2(h2), emb)
        u = self.up2(torch.cat([F.interpolate(m, size=h2.shape[2:]), h2], 1), emb)
        u = self.up1(torch.cat([F.interpolate(u, size=h1.shape[2:]), h1], 1), emb)
        return self.conv_out(F.silu(self.norm_out(u)))


model = UNet()
opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.0)
abar = torch.cumprod(1 - torch.linspace(1e-4, 0.02, T, dtype=torch.float64), 0).float()
data = torch.rand(1437, 1, size, size) * 2 - 1
labels = torch.randint(0, K, (1437,))
times = []
for step in range(steps + 3):
    start = time.perf_counter()
    idx = torch.randint(0, 1437, (B,))
    x0, y = data[idx], labels[idx]
    t = torch.randint(0, T, (B,))
    noise = torch.randn_like(x0)
    y = torch.where(torch.rand(B) < 0.1, torch.full_like(y, K), y)
    a = abar[t][:, None, None, None]
    xt = a.sqrt() * x0 + (1 - a).sqrt() * noise
    opt.zero_grad()
    loss = F.mse_loss(model(xt, t, y), noise)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    times.append(time.perf_counter() - start)
print(f"{B * steps / sum(times[3:]):.1f}")
