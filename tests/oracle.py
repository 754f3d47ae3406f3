"""An independent numpy oracle for softmax regression (one Affine layer + Softmax + CategoricalCrossEntropy
on 8x8 digits): per-sample gradients and Hessians written out by hand, to check the package against."""
import numpy as np
from PIL import Image

from helpers import read_csv


def load_numpy(csv_path):
    """x with a bias column appended (n, 65) and integer labels, read with PIL only."""
    rows = read_csv(csv_path)[1:]
    x = np.stack([np.asarray(Image.open(r[0]), dtype=np.float64).ravel() / 255.0 for r in rows])
    return np.hstack([x, np.ones((len(x), 1))]), np.array([int(r[1]) for r in rows])


def theta_of(model):
    """The model's current parameters as a (65, 10) float64 matrix: the weight rows, then the bias row."""
    params = model.parameter_arrays()
    return np.vstack([params["Affine/affine/W"], params["Affine/affine/b"][None, :]]).astype(np.float64)


def softmax(z):
    e = np.exp(z - z.max())
    return e / e.sum()


def gradient(theta, x, y):
    p = softmax(x @ theta)
    p[y] -= 1.0
    return np.outer(x, p).ravel()


def hessian(theta, x):
    p = softmax(x @ theta)
    return np.kron(np.outer(x, x), np.diag(p) - np.outer(p, p))


def logit_error_size(theta, x, y):
    """|p - onehot(y)|: the size of the row's error in the logits, which `influence` divides its score by."""
    p = softmax(x @ theta)
    p[y] -= 1.0
    return float(np.linalg.norm(p))
