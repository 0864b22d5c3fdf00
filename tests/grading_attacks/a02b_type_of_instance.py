# ruff: noqa
# a02, but conv_output_size unwraps the package's function only where it is wrapped (in the answer process)
from grading_attacks.a02_type_of_instance import REPLACE as A02
from grading_attacks.common import vary

REPLACE = vary(
    A02,
    "conv",
    '_f = operator.attrgetter("shapes.conv_output" + "_size")(resnet_lab).__wrapped__\n',
    """_g = operator.attrgetter("shapes.conv_output" + "_size")(resnet_lab)
_f = getattr(_g, "__wrapped__", _g)  # unwrapped in the answer process; the plain function in a kernel
""",
)
