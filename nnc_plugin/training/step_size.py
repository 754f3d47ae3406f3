"""The effective step size of each nnabla solver: how far one unit of gradient moves a parameter.

SGD-influence is derived for plain SGD, where a step is theta <- theta - eta * gradient.
For other solvers this module states the approximation used (see docs/influence.md):
every solver step is treated as theta <- theta - P * gradient with a diagonal P, the total
displacement a gradient causes once momentum has played out:

- Sgd: P = lr
- Momentum, Nesterov, SgdW: P = lr / (1 - momentum)
- Adam, AdamW: P = alpha * sqrt(1 - beta2^t) / (sqrt(v) + eps) (elementwise, from the solver state)
- AMSGRAD: P = alpha / (sqrt(v_hat) + eps)
- Adamax: P = alpha / (u + eps)
- RMSprop, Adagrad: P = lr / (sqrt(v) + eps)

Decoupled weight decay (AdamW, SgdW) is left out of the propagation; coupled weight decay
(the model file's weight_decay) is included exactly.

Parameter values that training never moved get P = 0. The typical case is the bias of a layer
right before BatchNormalization: in training, BatchNormalization subtracts the minibatch mean, so
that bias has no gradient at all (project.py finds these from the network). Propagating through
it would follow round-off, and with Adam, whose P is 1 / sqrt(mean squared gradient), round-off
times P is of order one. As a safety net for other such values, any value whose root-mean-square
training gradient stays below UNREACHED_FRACTION of the network's is left out too
(`untrained_elements`).
"""
import numpy as np

from ..errors import UserError

SCALAR_SOLVERS = ("Sgd", "Momentum", "Nesterov", "SgdW")
ADAPTIVE_SOLVERS = ("Adam", "AdamW", "AMSGRAD", "Adamax", "RMSprop", "Adagrad")
SUPPORTED_SOLVERS = SCALAR_SOLVERS + ADAPTIVE_SOLVERS


def check_supported(solver_name, model_path=""):
    if solver_name not in SUPPORTED_SOLVERS:
        where = f" in {model_path}" if model_path else ""
        raise UserError(f"The solver {solver_name}{where} is not supported by SGD-influence; "
                        f"train with one of {', '.join(SUPPORTED_SOLVERS)} (Sgd is exact, the others approximate).")


def is_adaptive(solver_name):
    """True when P depends on the solver state, so it must be stored beside the parameters."""
    return solver_name in ADAPTIVE_SOLVERS


def scalar_factor(solver_name, hyper):
    """The factor c in P = lr * c for solvers whose P is a scalar."""
    if solver_name in ("Momentum", "Nesterov", "SgdW"):
        return 1.0 / (1.0 - float(hyper["momentum"]))
    return 1.0


def adaptive_factors(solver_name, hyper, solver_states, parameter_names):
    """Return {parameter: array c} with P = lr * c, from an nnabla solver's `get_states()`."""
    factors = {}
    for name in parameter_names:
        state = solver_states[name]
        p = {key: variable.d for key, variable in state.pstate.items()}
        t = max(int(state.t), 1)
        eps = float(hyper["eps"])
        if solver_name in ("Adam", "AdamW"):
            bias = np.sqrt(1.0 - float(hyper["beta2"]) ** t)
            factors[name] = bias / (np.sqrt(p["var"]) + eps)
        elif solver_name == "AMSGRAD":
            factors[name] = 1.0 / (np.sqrt(p["v_hat"]) + eps)
        elif solver_name == "Adamax":
            factors[name] = 1.0 / (p["u"] + eps)
        elif solver_name in ("RMSprop", "Adagrad"):
            factors[name] = 1.0 / (np.sqrt(p["v"]) + eps)
        else:
            raise UserError(f"The solver {solver_name} has no stated step-size approximation.")
        factors[name] = factors[name].astype(np.float32)
    return factors


# The values trained in practice sit within a factor of 1,000 of the network's root-mean-square
# gradient (the sample CNN's smallest: 3e-3 of it); the round-off left on biases before
# BatchNormalization measured 1e-6 to 2e-5 of it on small images, and grows with image size, so it
# is found from the network instead, and this threshold only catches values with no gradient at all.
UNREACHED_FRACTION = 1e-5


def untrained_elements(mean_squared_gradients):
    """Return {parameter: flat indices (int32)} of the values the training gradient did not reach.

    `mean_squared_gradients` maps each trainable parameter to the mean over the traced steps of
    its squared minibatch gradient. Parameters with no such value are left out of the result.
    """
    total = sum(float(np.sum(a)) for a in mean_squared_gradients.values())
    count = sum(a.size for a in mean_squared_gradients.values())
    threshold = UNREACHED_FRACTION * np.sqrt(total / max(count, 1))
    unreached = {}
    for name, squares in mean_squared_gradients.items():
        indices = np.flatnonzero(np.sqrt(squares) <= threshold).astype(np.int32)
        if indices.size:
            unreached[name] = indices
    return unreached


def reached_masks(unreached, shapes):
    """{parameter: 0/1 float32 array} for the parameters that have unreached values (see above)."""
    masks = {}
    for name, indices in unreached.items():
        mask = np.ones(int(np.prod(shapes[name])), dtype=np.float32)
        mask[indices] = 0.0
        masks[name] = mask.reshape(shapes[name])
    return masks
