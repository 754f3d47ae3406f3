"""The faster double-backward rules give the same numbers as nnabla's own rules."""
import numpy as np
import pytest

import nnabla as nn
import nnabla.functions as F
import nnabla.parametric_functions as PF
from nnc_plugin.model.fast_rules import faster_double_backward


def _double_backward(fast, pool_kernel, pool_stride, relu_first, seed=0):
    """Per-sample directional derivatives (c.g) and the HVP (parameter grads) of a small CNN."""
    rng = np.random.RandomState(seed)
    batch = 6
    with nn.parameter_scope(f"net{pool_kernel}{pool_stride}{relu_first}"):
        x = nn.Variable.from_numpy_array(rng.randn(batch, 2, 11, 11).astype(np.float32))
        label = nn.Variable.from_numpy_array(rng.randint(0, 5, (batch, 1)))
        h = PF.convolution(x, 4, (3, 3), name="conv1", rng=np.random.RandomState(1))
        if relu_first:  # ReLU before pooling: many exact ties at zero inside the windows
            h = F.max_pooling(F.relu(h), pool_kernel, pool_stride)
        else:
            h = F.relu(F.max_pooling(h, pool_kernel, pool_stride))
        h = F.relu(PF.convolution(h, 3, (2, 2), name="conv2", rng=np.random.RandomState(2)))
        logits = PF.affine(h, 5, name="fc", rng=np.random.RandomState(3))
        per_sample = F.reshape(F.softmax_cross_entropy(logits, label), (batch,))
        params = list(nn.get_parameters().values())
    weights = nn.Variable.from_numpy_array(np.ones(batch, np.float32), need_grad=True)
    with faster_double_backward(fast):
        gradients = nn.grad([F.sum(weights * per_sample)], params)
    directions = [nn.Variable.from_numpy_array(np.random.RandomState(7 + i).randn(*p.shape).astype(np.float32))
                  for i, p in enumerate(params)]
    total = F.add_n(*[F.sum(g * v) for g, v in zip(gradients, directions)])
    for p in params:
        p.grad.zero()
    weights.grad.zero()
    total.forward()
    total.backward()
    return weights.g.copy(), [p.g.copy() for p in params]


@pytest.mark.parametrize("kernel, stride, relu_first", [
    ((2, 2), (2, 2), False),   # the fast MaxPooling rule
    ((2, 2), (2, 2), True),    # ... with ties at zero
    ((3, 3), (2, 2), False),   # overlapping windows: nnabla's rule is kept
])
def test_fast_rules_match_nnabla_rules(kernel, stride, relu_first):
    nnabla_scores, nnabla_hvp = _double_backward(False, kernel, stride, relu_first)
    fast_scores, fast_hvp = _double_backward(True, kernel, stride, relu_first)
    np.testing.assert_allclose(fast_scores, nnabla_scores, rtol=1e-5, atol=1e-6)
    for fast, reference in zip(fast_hvp, nnabla_hvp):
        np.testing.assert_allclose(fast, reference, rtol=1e-4, atol=1e-5 * np.abs(reference).max())
    assert np.abs(nnabla_scores).max() > 0


def test_rules_are_restored_after_use():
    from nnabla import backward_functions
    before = dict(backward_functions.registry)
    with faster_double_backward(True):
        assert backward_functions.registry["MaxPooling"] is not before["MaxPooling"]
    assert backward_functions.registry == before
