"""Bad input gets a clear error that says what was expected."""

import pytest
import torch
import torchvision

import resnet_lab
from resnet_lab import BasicBlock, Bottleneck, cifar_resnet, conv_output_size


@pytest.mark.parametrize("depth", [0, 2, 7, 18, 51, 21, -4])
def test_invalid_cifar_depth_names_valid_depths(depth):
    with pytest.raises(ValueError, match=r"6n\+2.*20, 26, 32, 44, 56, 110"):
        cifar_resnet(depth)


def test_non_integer_cifar_depth():
    with pytest.raises(ValueError, match="6n"):
        cifar_resnet(20.0)


def test_invalid_imagenet_depth():
    with pytest.raises(ValueError, match=r"\[18, 34, 50, 101, 152\]"):
        resnet_lab.resnet(20)


@pytest.mark.parametrize(
    "make",
    [
        lambda: BasicBlock(64, 64, shortcut="E"),  # "D" is ResNet-D's option (notebook 10)
        lambda: cifar_resnet(20, shortcut="b"),
        lambda: resnet_lab.resnet18(shortcut="projection"),
    ],
)
def test_unknown_shortcut_lists_choices(make):
    with pytest.raises(ValueError, match=r"choose one of \('A', 'B', 'C', 'D'\)"):
        make()


@pytest.mark.parametrize(
    "make",
    [
        lambda: Bottleneck(64, 64, stride_at="first"),
        lambda: resnet_lab.resnet50(stride_at="v1"),
    ],
)
def test_unknown_stride_placement_lists_choices(make):
    with pytest.raises(ValueError, match=r"choose one of \('3x3', '1x1'\)"):
        make()


def test_wrong_channel_count_states_expected_shape():
    expected = r"expects input of shape \(N, 3, H, W\).*\(2, 1, 224, 224\).*in_channels=1"
    with torch.device("meta"), pytest.raises(ValueError, match=expected):
        resnet_lab.resnet18()(torch.randn(2, 1, 224, 224))
    with pytest.raises(ValueError, match=r"\(N, 1, H, W\).*\(2, 3, 28, 28\)"):
        cifar_resnet(20, in_channels=1)(torch.randn(2, 3, 28, 28))


def test_missing_batch_dimension_is_explained():
    with pytest.raises(ValueError, match=r"4-D input.*unsqueeze\(0\)"):
        cifar_resnet(20)(torch.randn(3, 32, 32))


@pytest.mark.parametrize(
    "model,shape",
    [
        (lambda: resnet_lab.resnet18(), (1, 3, 16, 16)),
        (lambda: resnet_lab.resnet50(), (1, 3, 31, 224)),
        (lambda: cifar_resnet(20), (1, 3, 3, 3)),
    ],
)
def test_too_small_input_states_expected_shape(model, shape):
    with torch.device("meta"), pytest.raises(ValueError, match=r"H, W >= \d+.*downsamples by"):
        model()(torch.randn(shape))


@pytest.fixture(scope="module")
def meta_nets() -> dict[str, torch.nn.Module]:
    """Networks on the meta device: names and shapes of their weights, no memory, no init arithmetic."""
    with torch.device("meta"):
        return {"resnet18": resnet_lab.resnet18(), "resnet50": resnet_lab.resnet50(),
                "tv_resnet18": torchvision.models.resnet18(), "tv_resnet34": torchvision.models.resnet34()}  # fmt: skip


def test_state_dict_of_another_depth_names_mismatching_keys(meta_nets):
    with pytest.raises(RuntimeError, match=r"(?s)does not fit ResNet-18.*unexpected keys") as info:
        meta_nets["resnet18"].load_state_dict(meta_nets["tv_resnet34"].state_dict())
    assert "layer1.2.conv1.weight" in str(info.value)
    with pytest.raises(RuntimeError, match=r"shape mismatches: layer1.0.conv1.weight") as info:
        meta_nets["resnet50"].load_state_dict(meta_nets["tv_resnet18"].state_dict())
    with pytest.raises(RuntimeError, match=r"(?s)does not fit ResNet-56.*missing keys: layer1.3"):
        cifar_resnet(56).load_state_dict(cifar_resnet(20).state_dict())


def test_non_strict_loading_still_allowed(meta_nets):
    result = meta_nets["resnet18"].load_state_dict(meta_nets["tv_resnet34"].state_dict(), strict=False)
    assert "layer1.2.conv1.weight" in result.unexpected_keys


def test_option_a_cannot_shrink_channels():
    with pytest.raises(ValueError, match="option A can only add channels"):
        BasicBlock(128, 64, shortcut="A")


@pytest.mark.parametrize(
    "kwargs", [dict(n=0, kernel=3), dict(n=5, kernel=3, stride=0), dict(n=5, kernel=3, padding=-1)]
)
def test_conv_output_size_rejects_bad_arguments(kwargs):
    with pytest.raises(ValueError, match="must be an integer"):
        conv_output_size(**kwargs)


def test_conv_output_size_window_larger_than_input():
    with pytest.raises(ValueError, match="does not fit in 2 pixels"):
        conv_output_size(2, kernel=7)


def test_bad_layers_argument():
    with pytest.raises(ValueError, match="4 stages"):
        resnet_lab.ResNet(BasicBlock, [2, 2, 2])
    with pytest.raises(ValueError, match="at least one block"):
        resnet_lab.make_stage(BasicBlock, 64, 64, 0)


@pytest.mark.parametrize(
    "make,name",
    [
        (lambda: cifar_resnet(20, num_classes=0), "num_classes"),
        (lambda: cifar_resnet(20, in_channels=0), "in_channels"),
        (lambda: resnet_lab.resnet18(num_classes=-1), "num_classes"),
        (lambda: resnet_lab.resnet50(in_channels=0), "in_channels"),
        (lambda: cifar_resnet(20, num_classes=2.5), "num_classes"),
    ],
)
def test_channels_and_classes_must_be_positive(make, name):
    with pytest.raises(ValueError, match=rf"{name} must be a positive integer"):
        make()


@pytest.mark.parametrize(
    "changes,field",
    [
        (dict(lr=-1), "lr"),
        (dict(lr=0), "lr"),
        (dict(lr=float("nan")), "lr"),
        (dict(batch_size=0), "batch_size"),
        (dict(batch_size=12.5), "batch_size"),
        (dict(momentum=1.0), "momentum"),
        (dict(weight_decay=-1e-4), "weight_decay"),
    ],
)
def test_train_config_refuses_impossible_values(changes, field):
    with pytest.raises(ValueError, match=rf"^{field} must be"):
        resnet_lab.training.TrainConfig(**changes)


def test_uint8_images_are_explained_with_the_conversion():
    model = cifar_resnet(8, in_channels=1).eval()
    images = torch.randint(0, 256, (2, 1, 28, 28), dtype=torch.uint8)
    with pytest.raises(TypeError, match=r"expects a torch.float32 image batch.*got torch.uint8.*x\.float\(\) / 255"):
        model(images)
    with torch.no_grad():
        assert model(images.float() / 255).shape == (2, 10)  # the advice works


def test_float64_images_are_explained_with_the_conversion():
    with torch.device("meta"), pytest.raises(TypeError, match=r"got torch.float64\. Convert it: x\.float\(\)"):
        resnet_lab.resnet18().eval()(torch.rand(1, 3, 64, 64, dtype=torch.float64))
    double = cifar_resnet(8).double().eval()  # a float64 model takes float64 input
    with torch.no_grad():
        assert double(torch.rand(1, 3, 32, 32, dtype=torch.float64)).dtype == torch.float64
    with pytest.raises(TypeError, match=r"expects a torch.float64 image batch.*x\.to\(torch.float64\)"):
        double(torch.rand(1, 3, 32, 32))
