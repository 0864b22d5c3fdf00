"""Stages: a run of blocks at one resolution, and a table describing them.

``make_stage`` builds the blocks and *returns* a table of what it built (channels in/out,
stride, shortcut kind per block) instead of updating hidden state such as torchvision's
``self.inplanes``: the caller passes the input width and gets the output width back.
"""

from __future__ import annotations

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
    ``block_kwargs`` go to every block (``shortcut``, ``residual``, ``stride_at``).
    Returns the stage and one ``BlockInfo`` per block.
    """
    if num_blocks < 1:
        raise ValueError(f"a stage needs at least one block; got num_blocks={num_blocks}")
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
