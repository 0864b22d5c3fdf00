"""Fixup collapse diagnosis: constant lr 0.1 (the warm-up's peak), SGD 0.9 / 1e-4, batch 128, seed 0, 1 thread.
Variant 'same': every parameter at lr 0.1 (the committed arm). 'scalars10': scalar biases/multipliers at lr/10
(Zhang et al.'s CIFAR code puts every parameter named *bias* or *scale* at base_lr/10)."""

import sys
import time

import torch

sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[4]))
from resnet_lab import data
from resnet_lab.fixup import Bias, fixup_cifar_resnet
from resnet_lab.runtime import seed_everything

torch.set_num_threads(1)
variant = sys.argv[1]
steps = int(sys.argv[2])
splits = data.load_fashion_mnist("subset", seed=0)
seed_everything(0)
model = fixup_cifar_resnet(56, in_channels=1)
x_all = data.normalize(splits.train.images.float().div(255), splits.mean, splits.std)
y_all = splits.train.labels
scal = [p for n, p in model.named_parameters() if "bias" in n or "scale" in n]
ids = {id(p) for p in scal}
rest = [p for p in model.parameters() if id(p) not in ids]
lr = 0.1
groups = [{"params": rest}, {"params": scal, "lr": lr / 10 if variant == "scalars10" else lr}]
opt = torch.optim.SGD(groups, lr=lr, momentum=0.9, weight_decay=1e-4)
g = torch.Generator().manual_seed(0)
t0 = time.time()
for step in range(steps):
    idx = torch.randint(0, len(y_all), (128,), generator=g)
    x, y = x_all[idx], y_all[idx]
    out = model(x)
    loss = torch.nn.functional.cross_entropy(out, y)
    opt.zero_grad()
    loss.backward()
    opt.step()
    if step % 10 == 0 or step == steps - 1:
        with torch.no_grad():
            feats = model.features(x)
            b = [m.bias.item() for m in model.modules() if isinstance(m, Bias)]
            s = [blk.scale.item() for blk in model.blocks()]
        print(
            f"{variant} step {step:4d} loss {loss.item():.3f} err {(out.argmax(1) != y).float().mean().item() * 100:5.1f} "
            f"feat>0 {(feats > 0).float().mean().item():.2f} featmean {feats.mean().item():.3g} "
            f"|bias|max {max(map(abs, b)):.3g} bias2 {model.bias2.bias.item():.3g} scale[min,max] {min(s):.3g},{max(s):.3g} "
            f"{time.time() - t0:.0f}s",
            flush=True,
        )
