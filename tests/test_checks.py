"""resnet_lab.checks: every checker accepts correct answers (in several styles) and rejects each of
the ten mistakes of reference.md ("Mistakes seen in popular ResNet tutorials") with a helpful hint."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from rejecting import rejects
from torch import nn

import resnet_lab
from resnet_lab import BasicBlock, Bottleneck, ResNet, checks, make_stage


def conv3x3(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride, 1, bias=False)


def conv1x1(cin: int, cout: int, stride: int = 1, padding: int = 0) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 1, stride, padding, bias=False)


def projection(cin: int, cout: int, stride: int) -> nn.Sequential:
    return nn.Sequential(conv1x1(cin, cout, stride), nn.BatchNorm2d(cout))


# ----------------------------------------------------------------------------------------
# Correct answers, in different styles
# ----------------------------------------------------------------------------------------


class TorchvisionStyleBlock(nn.Module):
    """torchvision's names and order."""

    expansion = 1

    def __init__(self, in_channels: int, planes: int, stride: int = 1, residual: bool = True) -> None:
        super().__init__()
        self.conv1 = conv3x3(in_channels, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        needs_projection = residual and (stride != 1 or in_channels != planes)
        self.downsample = projection(in_channels, planes, stride) if needs_projection else None
        self.residual = residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.residual:
            if self.downsample is not None:
                identity = self.downsample(x)
            out += identity
        return self.relu(out)


class ShortcutFirstBlock(nn.Module):
    """Other names, the shortcut registered and computed first, functional ReLU."""

    expansion = 1

    def __init__(self, in_channels: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.shortcut = nn.Sequential()
        if stride != 1 or in_channels != planes:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, planes, kernel_size=1, stride=stride, bias=False), nn.BatchNorm2d(planes)
            )
        self.left = nn.Sequential(
            nn.Conv2d(in_channels, planes, 3, stride, 1, bias=False),
            nn.BatchNorm2d(planes),
            nn.ReLU(),
            nn.Conv2d(planes, planes, 3, 1, 1, bias=False),
            nn.BatchNorm2d(planes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.shortcut(x)
        return F.relu(self.left(x) + s)


class TorchvisionStyleBottleneck(nn.Module):
    expansion = 4

    def __init__(self, in_channels: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        out = planes * self.expansion
        self.conv1, self.bn1 = conv1x1(in_channels, planes), nn.BatchNorm2d(planes)
        self.conv2, self.bn2 = conv3x3(planes, planes, stride), nn.BatchNorm2d(planes)
        self.conv3, self.bn3 = conv1x1(planes, out), nn.BatchNorm2d(out)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = projection(in_channels, out, stride) if stride != 1 or in_channels != out else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(out + identity)


class ShortcutFirstBottleneck(nn.Module):
    """The projection registered and run first: in the 64 -> 256 block it has the same shape as conv3."""

    expansion = 4

    def __init__(self, in_channels: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        out = planes * 4
        self.proj = projection(in_channels, out, stride) if stride != 1 or in_channels != out else nn.Identity()
        self.body = nn.Sequential(
            conv1x1(in_channels, planes),
            nn.BatchNorm2d(planes),
            nn.ReLU(),
            conv3x3(planes, planes, stride),
            nn.BatchNorm2d(planes),
            nn.ReLU(),
            conv1x1(planes, out),
            nn.BatchNorm2d(out),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = self.proj(x)
        return torch.relu(self.body(x) + identity)


def loop_stage(block, in_channels, planes, num_blocks, stride):
    layers = []
    for i in range(num_blocks):
        layers.append(block(in_channels, planes, stride if i == 0 else 1))
        in_channels = planes * block.expansion
    return nn.Sequential(*layers)


def tuple_stage(block, in_channels, planes, num_blocks, stride):
    strides = [stride] + [1] * (num_blocks - 1)
    blocks = []
    for s in strides:
        blocks.append(block(in_channels, planes, s))
        in_channels = planes * block.expansion
    return nn.Sequential(*blocks), in_channels


class LambdaLayer(nn.Module):
    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, x):
        return self.fn(x)


class CifarBlockSymmetricPad(nn.Module):
    """Option A written as a lambda that pads the channels on both sides (a popular implementation)."""

    def __init__(self, in_channels: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1, self.bn1 = conv3x3(in_channels, planes, stride), nn.BatchNorm2d(planes)
        self.conv2, self.bn2 = conv3x3(planes, planes), nn.BatchNorm2d(planes)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != planes:
            pad = (planes - in_channels) // 2
            self.shortcut = LambdaLayer(lambda x: F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, pad, pad)))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class MyCifarNet(nn.Module):
    def __init__(self, depth: int, in_channels: int = 3, num_classes: int = 10) -> None:
        super().__init__()
        n = (depth - 2) // 6
        self.stem = nn.Sequential(conv3x3(in_channels, 16), nn.BatchNorm2d(16), nn.ReLU())
        blocks, width = [], 16
        for planes, stride in ((16, 1), (32, 2), (64, 2)):
            for i in range(n):
                blocks.append(CifarBlockSymmetricPad(width, planes, stride if i == 0 else 1))
                width = planes
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(64, num_classes)

    def forward(self, x):
        x = self.blocks(self.stem(x))
        return self.fc(x.mean(dim=(2, 3)))


class MyResNet(nn.Module):
    """An ImageNet ResNet written from scratch with the ShortcutFirstBlock."""

    def __init__(self, layers=(2, 2, 2, 2), num_classes: int = 1000) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(3, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(3, 2, 1)
        )
        width = 64
        stages = []
        for planes, n, stride in zip((64, 128, 256, 512), layers, (1, 2, 2, 2)):
            stages.append(loop_stage(ShortcutFirstBlock, width, planes, n, stride))
            width = planes
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(512, num_classes)

    def forward(self, x):
        x = self.stem(x)
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.head(torch.flatten(self.pool(x), 1))


def conv_size_floor(n, kernel, stride, padding):
    return math.floor((n + 2 * padding - kernel) / stride) + 1


def conv_size_int(n, kernel, stride, padding):
    return (n + 2 * padding - kernel) // stride + 1


@pytest.mark.parametrize("fn", [conv_size_floor, conv_size_int, resnet_lab.conv_output_size])
def test_conv_output_size_accepts_correct_formulas(fn, capsys):
    checks.conv_output_size(fn)
    assert capsys.readouterr().out.startswith("✓ conv_output_size: 14 cases match")


@pytest.mark.parametrize("cls", [lambda c: BasicBlock(c, c), lambda c: TorchvisionStyleBlock(c, c)])
def test_residual_unit_accepts_correct_units(cls, capsys):
    checks.residual_unit(cls)
    assert capsys.readouterr().out.startswith("✓ residual_unit: 2 configurations match")


class SequentialUnit(nn.Module):
    """A correct residual unit whose layers sit in an nn.Sequential (names 0, 1, ...)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.branch = nn.Sequential(
            conv3x3(channels, channels), nn.BatchNorm2d(channels), nn.ReLU(),
            conv3x3(channels, channels), nn.BatchNorm2d(channels),
        )  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.branch(x) + x)


@pytest.mark.parametrize("cls", [SequentialUnit, lambda c: ShortcutFirstBlock(c, c)])
def test_residual_unit_requires_the_names_notebook_01_loads_by(cls):
    """Notebook 01 copies the unit's weights into BasicBlock by name: a right function under other names fails."""
    message = rejects(checks.residual_unit, cls, "computes the right function", "self.conv1, self.bn1")
    assert "missing conv1.weight" in message


def test_residual_unit_checks_the_function_before_the_names():
    rejects(checks.residual_unit, lambda c: ReluBeforeAddBlock(c, c), "Is ReLU applied before the shortcut is added?")


@pytest.mark.parametrize("cls", [BasicBlock, TorchvisionStyleBlock, ShortcutFirstBlock])
def test_basic_block_accepts_correct_blocks(cls, capsys):
    checks.basic_block(cls)
    assert capsys.readouterr().out == (
        "✓ basic_block: 4 configurations match resnet_lab.BasicBlock "
        "(shapes, parameter counts, outputs; 3 with a projection shortcut): these checks passed\n"
    )


@pytest.mark.parametrize("cls", [Bottleneck, TorchvisionStyleBottleneck, ShortcutFirstBottleneck])
def test_bottleneck_accepts_correct_blocks(cls, capsys):
    checks.bottleneck(cls)
    assert capsys.readouterr().out.startswith("✓ bottleneck: 5 configurations match")


@pytest.mark.parametrize("fn", [make_stage, loop_stage, tuple_stage])
def test_stage_accepts_correct_stages(fn, capsys):
    checks.stage(fn)
    assert capsys.readouterr().out.startswith("✓ stage: 4 configurations match")


@pytest.mark.parametrize("fn", [resnet_lab.cifar_resnet, MyCifarNet])
def test_cifar_net_accepts_correct_nets(fn, capsys):
    checks.cifar_net(fn)
    assert "269,722 parameters" in capsys.readouterr().out


@pytest.mark.parametrize("cls", [BasicBlock, TorchvisionStyleBlock])
def test_plain_switch_accepts_correct_blocks(cls, capsys):
    checks.plain_switch(cls)
    assert capsys.readouterr().out.startswith("✓ plain_switch: 4 configurations")


def test_imagenet_resnet_accepts_a_from_scratch_net(capsys):
    checks.imagenet_resnet(lambda depth: MyResNet(), 18)
    assert capsys.readouterr().out.startswith("✓ imagenet_resnet: ResNet-18 matches resnet_lab.resnet18")


def test_imagenet_builders_are_called_with_depth_or_without_arguments():
    calls = []

    def my_resnet18(num_classes=1000):  # a defaulted argument is not the depth
        calls.append(num_classes)
        return nn.Identity()

    def any_depth(depth):
        calls.append(depth)
        return nn.Identity()

    checks.networks._build_imagenet("imagenet_resnet", my_resnet18, 18)
    checks.networks._build_imagenet("imagenet_resnet", any_depth, 34)
    assert calls == [1000, 34]


def test_small_input_net_accepts_cifar_nets(capsys):
    checks.small_input_net(resnet_lab.cifar_resnet(20))
    assert capsys.readouterr().out.startswith("✓ small_input_net: on 32x32 inputs the last feature map is 8x8")


def test_checkers_leave_the_callers_random_state_alone():
    torch.manual_seed(123)
    state = torch.get_rng_state()
    checks.residual_unit(lambda c: BasicBlock(c, c))
    assert torch.equal(torch.get_rng_state(), state)


# ----------------------------------------------------------------------------------------
# The ten mistakes of reference.md, each rejected with its hint
# ----------------------------------------------------------------------------------------


class ReluBeforeAddBottleneck(TorchvisionStyleBottleneck):
    """Mistake 1: ReLU after the last BN, before the add."""

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.relu(self.bn3(self.conv3(out)))
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(out + identity)


class ReluBeforeAddBlock(TorchvisionStyleBlock):
    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        identity = x if self.downsample is None else self.downsample(x)
        return F.relu(out + identity)


def test_mistake_1_relu_before_the_add():
    rejects(
        checks.bottleneck, ReluBeforeAddBottleneck, "never negative", "Is ReLU applied before the shortcut is added?"
    )
    rejects(checks.basic_block, ReluBeforeAddBlock, "Is ReLU applied before the shortcut is added?")
    rejects(checks.residual_unit, lambda c: ReluBeforeAddBlock(c, c), "Is ReLU applied before the shortcut is added?")


class PaddedOneByOneBottleneck(TorchvisionStyleBottleneck):
    """Mistake 2: 1x1 convolutions with padding=1."""

    def __init__(self, in_channels, planes, stride=1):
        super().__init__(in_channels, planes, stride)
        self.conv1 = conv1x1(in_channels, planes, padding=1)
        self.conv3 = conv1x1(planes, planes * 4, padding=1)


def test_mistake_2_padded_1x1_convs():
    message = rejects(
        checks.bottleneck,
        PaddedOneByOneBottleneck,
        "the 1x1 conv has padding",
        "grows by 2 pixels",
        "your forward raised RuntimeError",
    )
    assert "`conv1`" in message


class ProjectOutputBlock(TorchvisionStyleBlock):
    """Mistake 3: the projection applied to the block's output."""

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        identity = self.downsample(out) if self.downsample is not None else x
        return self.relu(out + identity)


def test_mistake_3_projection_applied_to_the_output():
    rejects(
        checks.basic_block,
        ProjectOutputBlock,
        "applied to the block's output instead of its input",
        "BasicBlock(64, 128, stride=2)" if False else "ProjectOutputBlock(64, 128, stride=2)",
    )


class InvertedConditionBlock(TorchvisionStyleBlock):
    """Mistake 4: projection when the shape stays, none when it changes."""

    def __init__(self, in_channels, planes, stride=1):
        super().__init__(in_channels, planes, stride)
        same = stride == 1 and in_channels == planes
        self.downsample = projection(in_channels, planes, stride) if same else None


def test_mistake_4_inverted_projection_condition():
    message = rejects(
        checks.basic_block, InvertedConditionBlock, "condition for a projection inverted", "extra layer `downsample.0`"
    )
    assert "expected 73,984, got 78,208" in message  # which layers, expected vs got


class NoStrideProjectionBlock(TorchvisionStyleBlock):
    """Mistake 5: the projection without the stride."""

    def __init__(self, in_channels, planes, stride=1):
        super().__init__(in_channels, planes, stride)
        if self.downsample is not None:
            self.downsample = projection(in_channels, planes, 1)


def test_mistake_5_projection_without_stride():
    rejects(
        checks.basic_block,
        NoStrideProjectionBlock,
        "your forward raised RuntimeError",
        "has stride 1 but the block has stride 2",
        "disagree in height/width",
    )


def fixed_pool_resnet(depth):
    model = resnet_lab.resnet(depth)
    model.avgpool = nn.AvgPool2d(7)
    return model


class FunctionalFixedPool(ResNet):
    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(F.avg_pool2d(x, 7), 1))


def test_mistake_6_fixed_average_pool():
    rejects(checks.imagenet_resnet, fixed_pool_resnet, "only accepts 224x224", "AdaptiveAvgPool2d(1)", depth=18)
    rejects(
        checks.imagenet_resnet,
        lambda depth: FunctionalFixedPool(BasicBlock, [2, 2, 2, 2]),
        "F.avg_pool2d(x, 7)",
        depth=18,
    )


def test_mistake_7_two_blocks_per_stage():
    def resnet50():
        return ResNet(Bottleneck, [2, 2, 2, 2])

    rejects(checks.imagenet_resnet, resnet50, "blocks per stage: expected [3, 4, 6, 3], got [2, 2, 2, 2]")


def stage_without_expansion(block, in_channels, planes, num_blocks, stride):
    """Mistake 8: in_channels not multiplied by the expansion."""
    layers = []
    for i in range(num_blocks):
        layers.append(block(in_channels, planes, stride if i == 0 else 1))
        in_channels = planes
    return nn.Sequential(*layers)


def test_mistake_8_channel_bookkeeping_without_expansion():
    rejects(
        checks.stage,
        stage_without_expansion,
        "block 1 was built for 64 input channels, but it receives 256",
        "in_channels = planes * block.expansion",
    )


def imagenet_stem_cifar_net(depth, in_channels=3, num_classes=10):
    """Mistake 9 (in the CIFAR exercise): the ImageNet stem."""
    model = resnet_lab.cifar_resnet(depth, in_channels, num_classes)
    model.conv1 = nn.Sequential(nn.Conv2d(in_channels, 16, 7, 2, 3, bias=False), nn.MaxPool2d(3, 2, 1))
    return model


def test_mistake_9_imagenet_stem_on_32x32():
    message = rejects(
        checks.small_input_net,
        resnet_lab.resnet18(num_classes=10),
        "last feature map is 1x1",
        "ImageNet-style stem",
        "3x3 conv with stride 1 and no max pool",
    )
    assert "7x7 conv with stride 2" in message
    rejects(checks.cifar_net, imagenet_stem_cifar_net, "ImageNet-style stem", "should have 269,722 parameters")


class ReluFirstInplaceUnit(nn.Module):
    """Mistake 10: ReLU(inplace=True) on the input, which the shortcut still needs."""

    def __init__(self, channels):
        super().__init__()
        self.conv1, self.bn1 = conv3x3(channels, channels), nn.BatchNorm2d(channels)
        self.conv2, self.bn2 = conv3x3(channels, channels), nn.BatchNorm2d(channels)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x):
        out = self.bn1(self.conv1(self.relu(x)))  # overwrites x itself
        out = self.bn2(self.conv2(self.relu(out)))
        return self.relu(out + x)


class AddIntoInputUnit(ReluFirstInplaceUnit):
    def forward(self, x):
        out = self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x)))))
        x += out
        return self.relu(x)


def test_mistake_10_inplace_relu_clobbers_the_shortcut():
    rejects(
        checks.residual_unit,
        ReluFirstInplaceUnit,
        "modified its input tensor in place",
        "lost its negative values",
        "nn.ReLU(inplace=True)",
    )
    rejects(checks.residual_unit, AddIntoInputUnit, "modified its input tensor in place")


# ----------------------------------------------------------------------------------------
# Other wrong answers: unfinished stubs, wrong signatures, wrong formulas, plain/residual switch
# ----------------------------------------------------------------------------------------


class StubBlock(nn.Module):
    def __init__(self, in_channels, planes, stride=1):
        super().__init__()
        raise NotImplementedError("build conv1, bn1, ...")


class StubForwardBlock(TorchvisionStyleBlock):
    def forward(self, x):
        raise NotImplementedError("write forward")


def stub_function(*args):
    raise NotImplementedError("fill me in")


@pytest.mark.parametrize(
    "checker, answer",
    [
        (checks.basic_block, StubBlock),
        (checks.basic_block, StubForwardBlock),
        (checks.bottleneck, StubBlock),
        (checks.stage, stub_function),
        (checks.cifar_net, stub_function),
        (checks.conv_output_size, stub_function),
        (checks.plain_switch, StubForwardBlock),
        (checks.residual_unit, stub_function),
    ],
)
def test_unfinished_exercises_say_so(checker, answer):
    message = rejects(checker, answer, "this exercise is not done yet: fill in the cell above")
    assert message.count("\n") == 0  # one short line


def test_imagenet_stub_says_so():
    rejects(checks.imagenet_resnet, stub_function, "not done yet", depth=18)


def test_wrong_signature_is_explained():
    rejects(checks.basic_block, lambda in_channels: None, "TypeError", "does your code take these arguments?")


def test_builder_must_return_a_module():
    rejects(checks.stage, lambda *args: [1, 2], "returned list, expected an nn.Module")


@pytest.mark.parametrize(
    "fn, phrase",
    [
        (lambda n, k, s, p: (n + 2 * p - k) // s, "the +1 is missing"),
        (lambda n, k, s, p: (n + p - k) // s + 1, "2p, not p"),
        (lambda n, k, s, p: (n + 2 * p - k) / s + 1, "use floor division //"),
        (lambda n, k, s, p: -(-(n + 2 * p - k) // s) + 1, "round down"),
    ],
)
def test_conv_output_size_rejects_wrong_formulas(fn, phrase):
    rejects(checks.conv_output_size, fn, phrase)


def test_conv_output_size_names_the_stem_case():
    rejects(
        checks.conv_output_size,
        lambda n, k, s, p: (n + 2 * p - k) // s,
        "conv_output_size(n=224, kernel=7, stride=2, padding=3) (the ResNet stem",
        "returned 111, expected 112",
    )


class NoFinalReluBlock(TorchvisionStyleBlock):
    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return out + (x if self.downsample is None else self.downsample(x))


class StrideOnFirst1x1(TorchvisionStyleBottleneck):
    def __init__(self, in_channels, planes, stride=1):
        super().__init__(in_channels, planes, stride)
        self.conv1 = conv1x1(in_channels, planes, stride)
        self.conv2 = conv3x3(planes, planes, 1)


class ChannelsOnlyBottleneck(TorchvisionStyleBottleneck):
    """A projection only when the channels change: a stride-2 block with 4 x planes input gets none."""

    def __init__(self, in_channels, planes, stride=1):
        super().__init__(in_channels, planes, stride)
        out = planes * 4
        self.downsample = projection(in_channels, out, stride) if in_channels != out else None


def test_bottleneck_projection_condition_on_channels_only():
    message = rejects(
        checks.bottleneck,
        ChannelsOnlyBottleneck,
        "ChannelsOnlyBottleneck(512, 128, stride=2)",
        "the shortcut also needs a projection when the block strides",
    )
    assert "inverted" not in message


def test_other_block_mistakes_get_specific_hints():
    rejects(checks.basic_block, NoFinalReluBlock, "without the final ReLU")
    rejects(checks.bottleneck, StrideOnFirst1x1, "ResNet v1", "v1.5")


class IgnoresResidualFlag(TorchvisionStyleBlock):
    def __init__(self, in_channels, planes, stride=1, residual=True):
        super().__init__(in_channels, planes, stride, residual=residual)
        self.residual = True  # the flag is ignored in forward
        self.downsample = None if residual is False else self.downsample


class PlainKeepsProjection(TorchvisionStyleBlock):
    def __init__(self, in_channels, planes, stride=1, residual=True):
        super().__init__(in_channels, planes, stride, residual=True)
        self.residual = residual


def test_plain_switch_rejects_wrong_switches():
    rejects(
        checks.plain_switch, IgnoresResidualFlag, "(residual=False) has no shortcut, but yours still adds its input"
    )
    rejects(checks.plain_switch, PlainKeepsProjection, "with residual=False there is no shortcut at all")


def test_checks_is_a_submodule_import():
    import importlib

    module = importlib.import_module("resnet_lab.checks")
    assert module is checks and callable(checks.basic_block)


# ----------------------------------------------------------------------------------------
# The package: registration, configurations, partial credit
# ----------------------------------------------------------------------------------------


def test_every_checker_module_is_registered_and_its_checkers_are_reachable():
    import importlib

    expected = {
        "conv_output_size",
        "residual_unit",
        "basic_block",
        "bottleneck",
        "plain_switch",
        "stage",
        "cifar_net",
        "imagenet_resnet",
        "small_input_net",
    }
    assert expected <= set(checks.CHECKERS)
    for module_name in checks.CHECKER_MODULES:
        module = importlib.import_module(f"resnet_lab.checks.{module_name}")
        for name in module.__all__:
            assert getattr(checks, name) is getattr(module, name) is checks.CHECKERS[name]
    assert checks.basic_block is checks.blocks.basic_block


class StridelessProjectionBlock(TorchvisionStyleBlock):
    """Right except that the projection forgets the stride (mistake 5): fine at stride 1, wrong at stride 2."""

    def __init__(self, in_channels: int, planes: int, stride: int = 1, residual: bool = True) -> None:
        super().__init__(in_channels, planes, stride, residual)
        if self.downsample is not None:
            self.downsample = projection(in_channels, planes, 1)


def test_collecting_records_each_configuration_for_partial_credit(capsys):
    from resnet_lab.checks.engine import collecting

    with collecting() as results, pytest.raises(AssertionError, match="stride"):
        checks.basic_block(StridelessProjectionBlock)
    assert [(config[:3], error is None) for config, error in results] == [
        ((64, 64, 1), True),
        ((64, 128, 2), False),
        ((32, 64, 1), True),
        ((64, 64, 2), False),
    ]
    assert capsys.readouterr().out == ""


def test_not_done_stops_collecting_at_once():
    from resnet_lab.checks.engine import collecting

    class Stub(nn.Module):
        def __init__(self, in_channels, planes, stride=1):
            raise NotImplementedError("fill me in")

    with collecting() as results, pytest.raises(AssertionError, match="not done yet"):
        checks.basic_block(Stub)
    assert len(results) == 4 and all(error is not None for _, error in results)


def test_extra_configurations_are_checked_and_counted(capsys):
    checks.basic_block(TorchvisionStyleBlock, configs=[(16, 32, 2)])
    assert capsys.readouterr().out.startswith(
        "✓ basic_block: 1 configuration matches resnet_lab.BasicBlock (shapes, parameter counts, outputs; "
        "1 with a projection shortcut)"
    )
    with pytest.raises(AssertionError, match="stride"):
        checks.basic_block(StridelessProjectionBlock, configs=[(16, 16, 1), (16, 16, 2)])
    checks.stage(
        lambda block, cin, planes, n, stride: make_stage(block, cin, planes, n, stride)[0],
        configs=[("Bottleneck", 32, 16, 2, 2)],
    )
    assert "1 configuration matches resnet_lab.make_stage" in capsys.readouterr().out
