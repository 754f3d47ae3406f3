"""The class directions: a trained classifier's sharpest Hessian directions, when they stand apart from the rest.

The Hessian of a trained C-class softmax classifier typically has C - 1 eigenvalues far above all the
others (Papyan, "Measurements of three-level hierarchical structure in the outliers in the spectrum of
deepnet Hessians", ICML 2019; "Traces of class/cross-class structure pervade deep learning spectra", JMLR
2020). Those directions say which class a sample belongs to: every training row's gradient and the
validation gradient have large components along them, whatever the row's label is worth. The `influence`
ranking (influence.py) needs a long sum of the backward recursion to damp them (a damped inverse Hessian
shrinks them by 1 / lambda); leaving them out does that at once, and what is left curves so little that a
short sum suffices.

`find_class_directions` takes the top eigenvalues of the mean training-loss Hessian over SEARCH_ROWS (or the
`Search`'s number of) random training rows at the current parameters by Lanczos (2 C + 10 Hessian-vector products over those rows) and
returns the top C - 1 directions when they stand apart: lambda_(C-1) / lambda_C >= GAP. Otherwise (no
such gap, a binary or non-classification loss, more than MAX_CLASSES classes, or a network too large for
the search's memory) it returns None and nothing is left out. Where the group does not stand apart after
2 C steps already, the search stops there: in the 48 trainings measured (the two sample networks and two
held-out ones, four regimes, three noise seeds; research/notebook.md) the ratio only fell or stayed
over the last 10 steps, so those steps never changed that decision. The search is left out, too, where
it does not fit in the ranking's budget (influence.py compares `Search.cost` with it).
"""
from dataclasses import dataclass

import numpy as np

from ..log import Progress, info
from .gradients import BatchedDirectional, PerSampleDirectional

SEARCH_ROWS = 256  # training rows the Hessian is averaged over (128 gave visibly noisier spectra)
GAP = 2.0  # the C - 1 directions stand apart when the smallest of their eigenvalues is GAP times the next
MAX_CLASSES = 20  # beyond, the search (up to 2 C + 10 Hessian-vector products) costs more than it is worth here
MEMORY_LIMIT = 1 << 30  # bytes the Lanczos basis may take (float64); larger networks go without the search


@dataclass
class ClassDirections:
    """Orthonormal directions (the columns of `vectors`, float64, one row per trainable value) and the
    eigenvalues examined (largest first; the first `count` belong to the directions)."""
    vectors: np.ndarray
    values: np.ndarray

    @property
    def count(self):
        return self.vectors.shape[1]

    def remove(self, arrays):
        """`arrays` (a list of parameter-shaped arrays) without their components along the directions."""
        x = flatten(arrays)
        return unflatten(x - self.vectors @ (self.vectors.T @ x), arrays)


def flatten(arrays):
    return np.concatenate([np.asarray(a, dtype=np.float64).ravel() for a in arrays])


def unflatten(vector, like):
    """`vector` cut into float32 arrays of the shapes of `like`."""
    out, start = [], 0
    for a in like:
        size = int(np.prod(np.shape(a)))
        out.append(vector[start:start + size].reshape(np.shape(a)).astype(np.float32))
        start += size
    return out


def lanczos(hvp, dimension, steps, rng, give_up=None):
    """(eigenvalues, largest first; their eigenvectors as the columns of a float64 array) of the symmetric
    operator `hvp` (a function of a float64 vector), by `steps` Lanczos iterations with full
    reorthogonalisation, started from a random vector of `rng`. `give_up`, when given, is (k, test): after
    k iterations it stops there if `test` of the eigenvalues found so far (largest first) is true."""
    basis = np.zeros((dimension, steps))
    alpha, beta = np.zeros(steps), np.zeros(steps)
    v = rng.standard_normal(dimension)
    v /= np.linalg.norm(v)
    taken = steps
    for i in range(steps):
        basis[:, i] = v
        w = hvp(v)
        alpha[i] = float(w @ v)
        previous = basis[:, :i + 1]
        for _ in range(2):  # twice: one pass leaves the basis visibly non-orthogonal after a few dozen steps
            w -= previous @ (previous.T @ w)
        beta[i] = float(np.linalg.norm(w))
        if beta[i] <= 1e-10 * max(np.abs(alpha[:i + 1]).max(), 1e-30):  # the operator's range is exhausted
            taken = i + 1
            break
        if give_up and i + 1 == give_up[0]:
            values = np.sort(np.linalg.eigvalsh(_tridiagonal(alpha, beta, i + 1)))[::-1]
            if give_up[1](values):
                taken = i + 1
                break
        v = w / beta[i]
    values, vectors = np.linalg.eigh(_tridiagonal(alpha, beta, taken))
    order = np.argsort(-values)
    return values[order], basis[:, :taken] @ vectors[:, order]


def _tridiagonal(alpha, beta, size):
    """The Lanczos matrix of the first `size` iterations."""
    return np.diag(alpha[:size]) + np.diag(beta[:size - 1], 1) + np.diag(beta[:size - 1], -1)


def lanczos_steps(classes, extra=10):
    """The Lanczos iterations of a search for `classes` classes: 2 C, where it decides, and `extra` more."""
    return 2 * classes + extra


@dataclass(frozen=True)
class Search:
    """What the search looks for and how: the number of classes of the network's classification loss (None: not
    one), the seed that draws its rows, how many rows the Hessian is averaged over, and whether the Hessian-vector
    products take gradients.PerSampleDirectional's per-sample reference path."""
    classes: object
    seed: int = 0
    rows: int = SEARCH_ROWS
    reference: bool = False
    extra_steps: int = 10  # Lanczos iterations after the 2 C at which the search decides

    def cost(self, n_rows):
        """Rows times Hessian-vector products the search takes at most (0 when there is nothing to look for)."""
        if not self.classes or self.classes < 3 or self.classes > MAX_CLASSES:
            return 0
        return lanczos_steps(self.classes, self.extra_steps) * min(self.rows, n_rows)


def stands_apart(values, count):
    """True when the `count` largest of `values` (largest first) stand apart from the next: a ratio >= GAP."""
    return len(values) > count and values[count] > 0 and values[count - 1] >= GAP * values[count]


def find_class_directions(model, dataset, batch_size, search):
    """Return the `ClassDirections` (the top `search.classes` - 1 directions of the mean training-loss Hessian at
    the model's parameters) when they stand apart from the rest, else None (module docstring; `search`: a
    `Search`). In a data-parallel run each process takes its share of every minibatch of the rows and the
    products are summed, so every process finds the same directions."""
    if not search.cost(len(dataset)):
        return None
    classes = search.classes
    dimension = sum(int(np.prod(p.shape)) for p in model.parameters.values())
    steps = min(lanczos_steps(classes, search.extra_steps), dimension)
    if dimension * steps * 8 > MEMORY_LIMIT:
        info(f"influence: the network has {dimension:,} trainable values, too many to measure its sharpest "
             "curvature in the memory set aside for it; scoring goes on without that refinement.")
        return None
    count = classes - 1
    early = (2 * classes, lambda values: not stands_apart(values, count))  # see the module docstring
    values, vectors = _search(mean_hessian(model, dataset, batch_size, search), steps, give_up=early)
    return ClassDirections(vectors[:, :count], values) if stands_apart(values, count) else None


def mean_hessian(model, dataset, batch_size, search):
    """(the product of the mean loss Hessian over `search.rows` rows drawn with `search.seed` and a float64 vector,
    the number of trainable values, the random state that drew the rows, for Lanczos' start)."""
    parameters = list(model.parameters.values())
    like = [p.d for p in parameters]
    rng = np.random.RandomState(search.seed)
    rows = np.sort(rng.choice(len(dataset), size=min(search.rows, len(dataset)), replace=False))
    directional = (PerSampleDirectional(model) if search.reference
                   else BatchedDirectional(model, batch_size=batch_size))
    comm = model.comm

    def hvp(vector):
        direction = unflatten(vector, like)
        total = [np.zeros(np.shape(a), dtype=np.float64) for a in like]
        for start in range(0, len(rows), batch_size):
            mine = comm.share(rows[start:start + batch_size])
            if len(mine):
                for t, h in zip(total, directional(dataset, mine, direction)[1]):
                    t += h
        return flatten(comm.sum_arrays(total)) / len(rows)
    return hvp, sum(a.size for a in like), rng


def _search(operator, steps, give_up=None):
    """Lanczos on `operator` (as mean_hessian returns it), showing progress (`give_up`: as in `lanczos`)."""
    hvp, dimension, rng = operator
    with Progress("Measuring how the training loss curves (a one-off step of influence)", steps) as progress:
        def counted(vector):
            product = hvp(vector)
            progress.advance(1)
            return product
        return lanczos(counted, dimension, steps, rng, give_up)
