"""PyTorch eager twin of crates/voxflow-torch/examples/train_bench.rs: the
same GPT-2 model (transformers GPT2LMHeadModel, eager attention, no dropout),
batch and AdamW step, on the CPU with the same thread count.

    python benches/train_bench.py N_LAYER N_HEAD N_EMBD CONTEXT BATCH STEPS THREADS
"""
import json, sys, time

import torch
import torch.nn.functional as F
from transformers import GPT2Config, GPT2LMHeadModel

n_layer, n_head, n_embd, context, batch, steps, threads = map(int, sys.argv[1:8])
torch.set_num_threads(threads)
torch.manual_seed(0)
config = GPT2Config(vocab_size=1024, n_positions=context, n_embd=n_embd, n_layer=n_layer, n_head=n_head,
                    resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
model = GPT2LMHeadModel(config, attn_implementation="eager") if "attn_implementation" in GPT2LMHeadModel.__init__.__code__.co_varnames else GPT2LMHeadModel(config)
model.config._attn_implementation = "eager"
model.train()
named = list(model.named_parameters())
opt = torch.optim.AdamW([{"params": [p for n, p in named if p.dim() >= 2], "weight_decay": 0.1},
                         {"params": [p for n, p in named if p.dim() < 2], "weight_decay": 0.0}],
                        lr=6e-4, betas=(0.9, 0.95), eps=1e-8)
g = torch.Generator().manual_seed(0)
def step():
    ids = torch.randint(0, 1024, (batch, context + 1), generator=g)
    x, y = ids[:, :-1], ids[:, 1:]
    logits = model(x).logits
    loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)), y.reshape(-1))
    opt.zero_grad()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
for _ in range(3):
    step()
start = time.perf_counter()
for _ in range(steps):
    step()
seconds = time.perf_counter() - start
print(json.dumps({"impl": "pytorch", "tokens_per_s": round(steps * batch * context / seconds, 1),
                  "ms_per_step": round(seconds * 1000 / steps, 3),
                  "parameters": sum(p.numel() for p in model.parameters())}))
