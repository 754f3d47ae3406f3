"""Faster gradient rules for `nnabla.grad`, used only while building the scoring graph on CPU.

SGD-influence differentiates the gradient once more (a double-backward). nnabla builds that
graph from Python "backward functions", and three of them are slow on CPU:
- MaxPooling: nnabla's rule uses MaxPoolingBackward, whose CPU kernels took a third of the
  scoring time on the sample CNN (max pooling itself is 1% of training). For the common
  non-overlapping case (kernel equal to stride, no padding, channel-first) `MaxPoolingScatter`
  does the same job with nnabla's fast first-order MaxPooling kernels: forward, it puts dy where
  each window's maximum sits; backward, it gathers the gradient from those places.
- ReLU: one numpy mask-multiply (`PositiveMask`) instead of three nnabla functions.
- Convolution: nnabla's rule, with the bias gradient as one numpy sum (`SumOver`).
Other layers, and the cases above that these rules do not cover, keep nnabla's own rules. The per-sample reference path always uses nnabla's own
rules, and tests check the two paths against each other.
"""
import contextlib
import sys

import numpy as np
from nnabla import backward_functions
from nnabla.function import PythonFunction


def skip_failing_relative_imports():
    """Make nnabla's compiled modules skip two imports that always fail, at every function call.

    nnabla's Cython code imports `nnabla` and `nnabla_ext` from inside the nnabla package, so Python
    first looks for `nnabla.nnabla` and `nnabla.nnabla_ext` on disk, fails, then finds the real ones.
    During a double-backward pass that search ran about 40 times per minibatch (3 ms of a 3.4 ms step
    on the digits MLP). A None entry in sys.modules makes those never-existing modules fail at once.
    """
    for name in ("nnabla.nnabla", "nnabla.nnabla_ext"):
        sys.modules.setdefault(name, None)


def _is_simple_pooling(input_shape, kernel, stride, ignore_border, pad, channel_last):
    kernel = tuple(kernel)
    stride = tuple(stride) if stride else kernel
    pad = tuple(pad) if pad else (0,) * len(kernel)
    if channel_last or len(kernel) != 2 or len(input_shape) < 3 or stride != kernel or any(pad):
        return False
    return ignore_border or all(size % k == 0 for size, k in zip(input_shape[-2:], kernel))


class MaxPoolingScatter(PythonFunction):
    """dx = MaxPoolingScatter(dy, x): dy placed where each (non-overlapping) window of x has its maximum.

    It runs nnabla's own MaxPooling kernels (fast on CPU): forward, MaxPooling's backward scatters
    dy; backward, the gradient is gathered back with the same positions (a mask made by scattering
    ones, then SumPooling). The positions are nnabla's, ties included.
    """

    def __init__(self, ctx, kernel):
        super().__init__(ctx)
        self.kernel = tuple(kernel)
        self._pool = None

    @property
    def name(self):
        return "MaxPoolingScatter"

    def min_inputs(self):
        return 2

    def min_outputs(self):
        return 1

    def grad_depends_output_data(self, i, o):
        return False

    def grad_depends_input_data(self, i, j):
        return j == 1  # where the maxima are depends on x; the result is linear in dy

    def setup_impl(self, inputs, outputs):
        import nnabla as nn
        import nnabla.function as native
        outputs[0].reset_shape(inputs[1].shape, True)
        self._x = nn.Variable(inputs[1].shape, need_grad=True)
        self._y = nn.Variable(inputs[0].shape)
        self._pool = native.MaxPooling(self.ctx, self.kernel, self.kernel, True, (0,) * len(self.kernel), False)
        self._pool.setup([self._x], [self._y])
        self._sum = native.SumPooling(self.ctx, self.kernel, self.kernel, True, (0,) * len(self.kernel), False)
        self._masked = nn.Variable(inputs[1].shape)
        self._gathered = nn.Variable(inputs[0].shape)
        self._sum.setup([self._masked], [self._gathered])

    def _scatter(self, dy):
        """dy scattered to the maxima of the x last given to `_locate`."""
        self._y.g = dy
        self._x.grad.zero()
        self._pool.backward([self._x], [self._y], [False])
        return self._x.g

    def forward_impl(self, inputs, outputs):
        self._x.d = inputs[1].d
        self._pool.forward([self._x], [self._y])  # finds the maxima
        outputs[0].d = self._scatter(inputs[0].d)
        # the positions as a 0/1 mask, for backward_impl (x does not change between the two)
        self._mask = self._scatter(np.ones(inputs[0].shape, dtype=np.float32)).copy()

    def backward_impl(self, inputs, outputs, propagate_down, accum):
        if propagate_down[0]:
            self._masked.d = outputs[0].g * self._mask
            self._sum.forward([self._masked], [self._gathered])
            if accum[0]:
                inputs[0].g += self._gathered.d
            else:
                inputs[0].g = self._gathered.d
        if propagate_down[1] and not accum[1]:
            inputs[1].g = 0  # x only selects positions: its gradient through this function is zero


class _ElementwiseRule(PythonFunction):
    """Base of small numpy functions used inside the double-backward graph."""

    def min_outputs(self):
        return 1

    def grad_depends_output_data(self, i, o):
        return False

    @staticmethod
    def _store(variable, values, accumulate):
        if accumulate:
            variable.g += values
        else:
            variable.g = values


class PositiveMask(_ElementwiseRule):
    """dx = PositiveMask(dy, x) = dy where x > 0, else 0 (the gradient of ReLU); linear in dy."""

    @property
    def name(self):
        return "PositiveMask"

    def min_inputs(self):
        return 2

    def grad_depends_input_data(self, i, j):
        return j == 1

    def setup_impl(self, inputs, outputs):
        outputs[0].reset_shape(inputs[0].shape, True)

    def forward_impl(self, inputs, outputs):
        outputs[0].d = inputs[0].d * (inputs[1].d > 0)

    def backward_impl(self, inputs, outputs, propagate_down, accum):
        if propagate_down[0]:
            self._store(inputs[0], outputs[0].g * (inputs[1].d > 0), accum[0])
        if propagate_down[1] and not accum[1]:
            inputs[1].g = 0


class SumOver(_ElementwiseRule):
    """y = SumOver(x, axes): a sum over `axes` (the bias gradient of a convolution)."""

    def __init__(self, ctx, axes):
        super().__init__(ctx)
        self.axes = tuple(axes)

    @property
    def name(self):
        return "SumOver"

    def min_inputs(self):
        return 1

    def grad_depends_input_data(self, i, j):
        return False

    def setup_impl(self, inputs, outputs):
        shape = [n for axis, n in enumerate(inputs[0].shape) if axis not in self.axes]
        outputs[0].reset_shape(tuple(shape), True)

    def forward_impl(self, inputs, outputs):
        outputs[0].d = inputs[0].d.sum(axis=self.axes)

    def backward_impl(self, inputs, outputs, propagate_down, accum):
        if propagate_down[0]:
            kept = [1 if axis in self.axes else n for axis, n in enumerate(inputs[0].shape)]
            spread = np.broadcast_to(outputs[0].g.reshape(kept), inputs[0].shape)
            self._store(inputs[0], spread, accum[0])


def relu_backward(grad_inputs, inputs, input_shapes, outputs, output_shapes, inplace=False):
    """Gradient rule of ReLU for nnabla.grad: one numpy mask-multiply instead of three nnabla functions."""
    import nnabla as nn
    reference = inputs[0] if inputs[0] is not None else outputs[0]
    if reference is None:
        return _NNABLA_RULES["ReLU"](grad_inputs, inputs, input_shapes, outputs, output_shapes, inplace)
    return PositiveMask(nn.get_current_context())(grad_inputs[0], reference)


def convolution_backward(grad_inputs, inputs, input_shapes, outputs, output_shapes, base_axis=1, pad=None,
                         stride=None, dilation=None, group=1, channel_last=False):
    """Gradient rule of Convolution: nnabla's rule, with the bias gradient as one numpy sum."""
    import nnabla as nn
    grads = _NNABLA_RULES["Convolution"](grad_inputs, inputs, input_shapes, outputs, output_shapes, base_axis,
                                         pad, stride, dilation, group, channel_last)
    if len(input_shapes) < 3:
        return grads
    dy = grad_inputs[0]
    base = base_axis + dy.ndim * (base_axis < 0)
    axes = list(range(dy.ndim - 1)) if channel_last else list(range(base)) + list(range(base + 1, dy.ndim))
    return grads[0], grads[1], SumOver(nn.get_current_context(), axes)(dy)


def max_pooling_backward(grad_inputs, inputs, input_shapes, outputs, output_shapes,
                         kernel, stride=None, ignore_border=True, pad=None, channel_last=False):
    """Gradient rule of MaxPooling for nnabla.grad: MaxPoolingScatter where it applies, else nnabla's rule."""
    if not _is_simple_pooling(input_shapes[0], kernel, stride, ignore_border, pad, channel_last):
        return _NNABLA_RULES["MaxPooling"](grad_inputs, inputs, input_shapes, outputs, output_shapes,
                                            kernel, stride, ignore_border, pad, channel_last)
    import nnabla as nn
    return MaxPoolingScatter(nn.get_current_context(), kernel)(grad_inputs[0], inputs[0])


_FAST_RULES = {"MaxPooling": max_pooling_backward, "ReLU": relu_backward, "Convolution": convolution_backward}
_NNABLA_RULES = {name: backward_functions.registry[name] for name in _FAST_RULES}


@contextlib.contextmanager
def faster_double_backward(enabled=True):
    """While active, `nnabla.grad` uses this module's rules instead of nnabla's slow ones (CPU only)."""
    if not enabled:
        yield
        return
    saved = {name: backward_functions.registry[name] for name in _FAST_RULES}
    backward_functions.registry.update(_FAST_RULES)
    try:
        yield
    finally:
        backward_functions.registry.update(saved)
