"""Stages: a run of blocks at one resolution, and a table describing them.

``make_stage`` builds the blocks of one stage and *returns* a table of what it built (channels
in/out, stride, shortcut kind per block) instead of updating hidden state such as torchvision's
``self.inplanes``: the caller passes the input width and gets the output width back.

``make_stages`` builds all stages of a network from three lists, in the spirit of timm's
``make_blocks``: widths (``planes``), depths (blocks per stage) and strides in; the stages, named
``layer1``, ``layer2``, ..., and the table of every block out. ``ResNet`` and ``CifarResNet`` are
both built with it:

    stages, table = make_stages(Bottleneck, 64, widths=(64, 128, 256, 512), depths=(3, 4, 6, 3), strides=(1, 2, 2, 2))
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from torch import nn

from .blocks import Block, describe_shortcut


@dataclass(frozen=True)
class BlockInfo:
    """One row of a stage table: what a block takes and gives."""

    stage: str
    index: int
    block: str
    in_channels: int
    out_channels: int
    stride: int
    shortcut: str  # 'identity', 'projection', 'zero-pad' or 'none' (plain block)


def make_stage(
    block: Block,
    in_channels: int,
    planes: int,
    num_blocks: int,
    stride: int = 1,
    *,
    name: str = "stage",
    **block_kwargs: Any,
) -> tuple[nn.Sequential, list[BlockInfo]]:
    """Build ``num_blocks`` blocks; the first may stride and change width, the rest keep the shape.

    Shapes: (N, in_channels, H, W) -> (N, planes * block.expansion, H/stride, W/stride).
    ``block_kwargs`` go to every block (e.g. ``shortcut``, ``residual``, ``stride_at``).
    Returns the stage and one ``BlockInfo`` per block.
    """
    if not isinstance(num_blocks, int) or num_blocks < 1:
        raise ValueError(f"a stage needs at least one block; got num_blocks={num_blocks!r}")
    blocks: list[nn.Module] = []
    table: list[BlockInfo] = []
    for index in range(num_blocks):
        block_stride = stride if index == 0 else 1
        module = block(in_channels, planes, block_stride, **block_kwargs)
        table.append(
            BlockInfo(
                stage=name,
                index=index,
                block=block.__name__,
                in_channels=in_channels,
                out_channels=module.out_channels,
                stride=block_stride,
                shortcut=describe_shortcut(module.downsample, module.residual),
            )
        )
        blocks.append(module)
        in_channels = module.out_channels
    return nn.Sequential(*blocks), table


def make_stages(
    block: Block,
    in_channels: int,
    widths: Sequence[int],
    depths: Sequence[int],
    strides: Sequence[int],
    *,
    prefix: str = "layer",
    **block_kwargs: Any,
) -> tuple[dict[str, nn.Sequential], list[BlockInfo]]:
    """All stages of a network: stage i has ``depths[i]`` blocks of ``widths[i]`` planes, its first block strides ``strides[i]``.

    Each stage starts from the width the stage before it produced (``planes * block.expansion``).
    Shapes: (N, in_channels, H, W) -> (N, widths[-1] * block.expansion, H / prod(strides), W / prod(strides)).
    ``block_kwargs`` go to every block. Returns the stages by name (``layer1``, ``layer2``, ... in
    order; the caller registers them, e.g. ``self.add_module(name, stage)``, so the state-dict keys
    stay torchvision's) and one ``BlockInfo`` per block, over all stages.
    """
    if not (len(widths) == len(depths) == len(strides)) or not widths:
        raise ValueError(
            f"give one width, depth and stride per stage (the same number of each, at least one); got "
            f"widths={list(widths)}, depths={list(depths)}, strides={list(strides)}"
        )
    stages: dict[str, nn.Sequential] = {}
    table: list[BlockInfo] = []
    for i, (planes, num_blocks, stride) in enumerate(zip(widths, depths, strides), start=1):
        name = f"{prefix}{i}"
        stages[name], rows = make_stage(block, in_channels, planes, num_blocks, stride, name=name, **block_kwargs)
        table += rows
        in_channels = rows[-1].out_channels  # the next stage starts from here
    return stages, table


def format_block_table(table: list[BlockInfo]) -> str:
    """The stage table as aligned text, one block per line."""
    header = f"{'stage':<8}{'block':>6}  {'type':<11}{'in':>6}{'out':>6}{'stride':>8}  shortcut"
    lines = [header, "-" * len(header)]
    for row in table:
        lines.append(
            f"{row.stage:<8}{row.index:>6}  {row.block:<11}{row.in_channels:>6}{row.out_channels:>6}"
            f"{row.stride:>8}  {row.shortcut}"
        )
    return "\n".join(lines)
