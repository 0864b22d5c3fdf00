"""Fixup collapse diagnosis: fraction of positive activations / mean after the stem and each stage, every 5 steps
of SGD at a constant lr (argv[1]; 0.1 = the recipe's peak), momentum 0.9, weight decay 1e-4, batch 128, seed 0, 1 thread,
every parameter at that lr. Output: alive_probe-lr0.1.log."""

import sys

import torch

sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[4]))
from resnet_lab import data
from resnet_lab.fixup import fixup_cifar_resnet
from resnet_lab.runtime import seed_everything

torch.set_num_threads(1)
splits = data.load_fashion_mnist("subset", seed=0)
seed_everything(0)
model = fixup_cifar_resnet(56, in_channels=1)
x_all = data.normalize(splits.train.images.float().div(255), splits.mean, splits.std)
y_all = splits.train.labels
opt = torch.optim.SGD(model.parameters(), lr=float(sys.argv[1]), momentum=0.9, weight_decay=1e-4)
g = torch.Generator().manual_seed(0)
for step in range(41):
    idx = torch.randint(0, len(y_all), (128,), generator=g)
    x, y = x_all[idx], y_all[idx]
    if step % 5 == 0:
        with torch.no_grad():
            h = model.relu(model.bias1(model.conv1(x)))
            s = [f"stem {(h > 0).float().mean():.2f}/{h.mean():.3f}"]
            for i in (1, 2, 3):
                h = getattr(model, f"layer{i}")(h)
                s.append(f"L{i} {(h > 0).float().mean():.2f}/{h.mean():.3f}")
            c2 = sum(b.conv2.weight.norm() ** 2 for b in model.blocks()) ** 0.5
            print(
                step,
                " ".join(s),
                f"stemW {model.conv1.weight.norm():.3f} conv2s {c2:.3f} fcW {model.fc.weight.norm():.3f} fcb {model.fc.bias.norm():.3f}",
                flush=True,
            )
    loss = torch.nn.functional.cross_entropy(model(x), y)
    opt.zero_grad()
    loss.backward()
    opt.step()
