"""resnet_lab.throughput: FLOP counts pinned to arithmetic and to the reference figure; rates and fractions."""

import pytest
import torch

from resnet_lab import throughput


def test_conv_flops_are_three_convolutions_of_the_reference_shape():
    n, c, h, w = throughput.CONV_SHAPE
    forward = 2 * n * c * h * w * c * 9  # multiply-adds of a 3x3, stride-1, padded conv
    assert throughput.conv_flops("fp32") == 3 * forward == 22_196_256_768  # forward, grad input, grad weight
    assert throughput.conv_flops("bf16") == throughput.conv_flops("fp32")


def test_resnet20_costs_184_7_mflop_per_training_image():
    # the figure of issue 25 and README Performance: forward + backward on 1x28x28
    assert throughput.train_flops_per_image(20) / 1e6 == pytest.approx(184.7, abs=0.05)
    assert throughput.train_flops_per_image(56) / 1e6 == pytest.approx(574.9, abs=0.05)
    # a 20x20 image (progressive resizing) costs about (20/28)^2 as much
    ratio = throughput.train_flops_per_image(20, size=20) / throughput.train_flops_per_image(20)
    assert ratio == pytest.approx((20 / 28) ** 2, rel=0.02)


def test_conv_rate_is_positive_and_leaves_the_threads_alone():
    threads = torch.get_num_threads()
    assert throughput.conv_rate("fp32", steps=1) > 0
    assert torch.get_num_threads() == threads


def test_efficiency_is_achieved_flops_over_the_conv_rate():
    assert throughput.efficiency(1000, 184.7e6, 184.7) == pytest.approx(1.0)
    assert throughput.efficiency(500, 184.7e6, 184.7) == pytest.approx(0.5)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: throughput.conv_rate("fp16"), "precision must be one of"),
        (lambda: throughput.conv_rate("fp32", steps=0), "steps must be at least 1"),
        (lambda: throughput.efficiency(1.0, 1.0, 0.0), "conv_gflops must be positive"),
    ],
)
def test_bad_input_is_refused_with_a_message(call, message):
    with pytest.raises(ValueError, match=message):
        call()
