"""How each nnabla solver turns a gradient into a step, as SGD-influence's backward recursion needs it.

Every supported solver's update is written in one linear form, with g_t the minibatch gradient
(coupled weight decay included) and s_t the solver's state:

    s_t = beta * s_{t-1} + B_t * g_t,        theta_{t+1} = theta_t - A_t * s_t

- Sgd:       beta = 0,        A_t = 1, B_t = eta_t                      (exact)
- Momentum:  beta = momentum, A_t = 1, B_t = eta_t                      (exact: nnabla's b_t = gamma b_{t-1} + eta g_t)
- Adam:      beta = beta1,    A_t = alpha_t sqrt(1 - beta2^k) / (1 - beta1^k) / (sqrt(v) + eps),
             B_t = 1 - beta1  (k: the step's iteration; the second moment v held fixed, as Terashita
             et al., ICLR 2021, did to extend SGD-influence to Adam)

`linearisation` builds it. The other solvers are folded into beta = 0, A_t = 1, B_t = eta_t * c
with a diagonal step factor c, the total displacement a gradient causes once momentum has played out
(the fold was also used for Momentum and Adam before; their exact forms are more faithful to
retraining, research/evidence.md, section 5):

- Nesterov, SgdW: P = lr / (1 - momentum)
- AdamW: P = alpha * sqrt(1 - beta2^t) / (sqrt(v) + eps) (elementwise, from the solver state)
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
from dataclasses import dataclass
from typing import Callable, List, Tuple

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


@dataclass
class Linearisation:
    """The solver's update in the linear form of the module docstring, for the traced steps."""
    beta: float
    step: Callable[[int], Tuple[List, List]]  # traced step t -> (A_t, B_t), per parameter (scalars or arrays)


def linearisation(solver_name, hyper, learning_rate, factors, iterations=None):
    """The `Linearisation` of a solver over the traced steps.

    `learning_rate(t)` is traced step t's learning rate; `factors(t)` its per-parameter step factors c
    (`scalar_factor`, `adaptive_factors`), with the values training never moved masked to 0. For Adam,
    `iterations(t)` is (k, r): the step's 1-based iteration number, and the iteration at which the
    factors c were recorded, so that 1 / (sqrt(v) + eps) = c / sqrt(1 - beta2^r).
    """
    def moved(c):  # 1 where training moved the value, 0 where its factor is masked
        return np.asarray(c) > 0

    if solver_name == "Momentum":
        def momentum_step(t):
            c = factors(t)
            return [1.0] * len(c), [learning_rate(t) * moved(x) for x in c]
        return Linearisation(float(hyper["momentum"]), momentum_step)
    if solver_name == "Adam" and iterations is not None:
        beta1, beta2 = float(hyper["beta1"]), float(hyper["beta2"])

        def adam_step(t):
            (k, recorded), c = iterations(t), factors(t)
            scale = learning_rate(t) * np.sqrt(1.0 - beta2 ** k) / (1.0 - beta1 ** k) / np.sqrt(1.0 - beta2 ** recorded)
            return [scale * np.asarray(x) for x in c], [(1.0 - beta1) * moved(x) for x in c]
        return Linearisation(beta1, adam_step)

    def folded_step(t):  # factors(t) may read a file (--mode all): once per step
        c = factors(t)
        return [1.0] * len(c), [learning_rate(t) * x for x in c]
    return Linearisation(0.0, folded_step)


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
