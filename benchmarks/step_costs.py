"""What one scoring step costs, piece by piece, against one training step (same minibatch).

Usage:  .venv/bin/python benchmarks/step_costs.py [--project mnist|digits] [--repeats 30]

SGD-influence needs, at every traced step, the inner products v . grad l_j of the step's rows and
the minibatch Hessian-vector product H v. This script times, on one minibatch of the sample project
(freshly initialised parameters; the arithmetic does not depend on their values):

  training step              forward + backward of the minibatch loss (what one training step costs)
  batched scoring step       the plugin's default: one double-backward gives both (fast rules)
  HVP alone, fast rules      the Hessian-vector product only: the floor of any implementation
  HVP alone, nnabla rules    the same with nnabla's own gradient rules
  per-sample inner products  one batch-size-1 backward per row, then the dot products
  published-style step       per-sample inner products + HVP with nnabla's rules
  reference step             per-sample inner products + batch-size-1 Hessian-vector products
  HVP by a gradient difference  (grad L(theta + e v) - grad L(theta - e v)) / 2e: two training-style passes;
                             not used, because ReLU and max-pooling kinks make it wrong (its relative error
                             against the double backward is printed below the table, for several e)

Printed as a table (milliseconds, best and median of --repeats, and the ratio of the best to the
training step's best) and written to benchmarks/out/step_costs[_digits].md.
"""
import argparse
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)

import numpy as np  # noqa: E402
from tables import publish  # noqa: E402

PROJECTS = {"mnist": "mnist_cnn.nntxt", "digits": "digits_mlp.nntxt"}


def timings(function, repeats):
    for _ in range(3):
        function()
    seconds = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        seconds.append(time.perf_counter() - started)
    return min(seconds), float(np.median(seconds))


def hessian_only(model, size, fast_rules=True):
    """Return step(dataset, indices, direction): the Hessian-vector product of a minibatch of `size` rows
    alone, nothing else (the part of every scoring step that any implementation of the method pays)."""
    import nnabla as nn
    import nnabla.functions as F
    from nnc_plugin.model.fast_rules import faster_double_backward
    parameters = list(model.parameters.values())
    loss = model.loss_graph(size, train=False)
    with faster_double_backward(fast_rules):
        gradients = nn.grad([F.sum(loss.per_sample_loss)], parameters)
        directions = [nn.Variable(p.shape) for p in parameters]
        total = F.add_n(*[F.sum(g * d) for g, d in zip(gradients, directions)])

    def step(dataset, indices, direction):
        model.feed(loss, dataset, indices)
        for variable, values in zip(directions, direction):
            variable.d = values
        for p in parameters:
            p.grad.zero()
        total.forward(clear_no_need_grad=True)
        total.backward(clear_buffer=True)
    return step


def per_sample_inner_products(model, dataset, indices, direction):
    """direction . grad l_j for the rows `indices`, one batch-size-1 backward pass each (nnabla's own rules)."""
    import numpy as np
    parameters = list(model.parameters.values())
    single = model.loss_graph(1, train=False)
    products = []
    for row in indices:
        model.feed(single, dataset, np.array([row]))
        for p in parameters:
            p.grad.zero()
        single.mean_loss.forward(clear_no_need_grad=True)
        single.mean_loss.backward(clear_buffer=True)
        products.append(sum(float(np.vdot(p.g, d)) for p, d in zip(parameters, direction)))
    return products


def published_step(model, size):
    """Return step(dataset, indices, direction): a scoring step the way the published reference implementation
    does it, one backward pass per row for the inner products and one double backward of the whole minibatch
    (nnabla's own rules) for the Hessian-vector product."""
    hvp = hessian_only(model, size, fast_rules=False)

    def step(dataset, indices, direction):
        per_sample_inner_products(model, dataset, indices, direction)
        hvp(dataset, indices, direction)
    return step


def gradient_difference(model, size):
    """Return step(dataset, indices, direction, epsilon=1e-3): the minibatch Hessian-vector product by a central
    difference of two gradients (a candidate for a cheaper recursion step; see the module docstring)."""
    import nnabla.functions as F
    parameters = list(model.parameters.values())
    loss = model.loss_graph(size, train=False)
    objective = F.sum(loss.per_sample_loss)

    def gradient():
        for p in parameters:
            p.grad.zero()
        objective.forward(clear_no_need_grad=True)
        objective.backward(clear_buffer=True)
        return [p.g.copy() for p in parameters]

    def step(dataset, indices, direction, epsilon=1e-3):
        model.feed(loss, dataset, indices)
        original = [p.d.copy() for p in parameters]
        gradients = []
        for sign in (1.0, -1.0):
            for p, x, d in zip(parameters, original, direction):
                p.d = x + sign * epsilon * d
            gradients.append(gradient())
        for p, x in zip(parameters, original):
            p.d = x
        return [(a - b) / (2.0 * epsilon) for a, b in zip(*gradients)]
    return step


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--project", choices=sorted(PROJECTS), default="mnist")
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--context", choices=("cpu", "cudnn"), default="cpu", help="cudnn: an NVIDIA GPU")
    args = parser.parse_args()

    from nnc_plugin.log import quiet_nnabla  # first: quiets nnabla's start-up chatter
    from nnc_plugin.data.dataset import read_dataset
    from nnc_plugin.scores.gradients import BatchedDirectional, PerSampleDirectional
    from nnc_plugin.model.network import Model
    from nnc_plugin.model.project import load_project
    quiet_nnabla()

    folder = os.path.join(ROOT, "sample_projects", args.project)
    project = load_project(os.path.join(folder, PROJECTS[args.project]))
    data = read_dataset(os.path.join(folder, "data", "train.csv"))
    model = Model(project, seed=0, context=args.context)
    parameters = list(model.parameters.values())
    size = project.batch_size
    rows = np.arange(size)
    direction = [np.random.RandomState(0).standard_normal(p.shape).astype(np.float32) * 0.01 for p in parameters]

    training = model.loss_graph(size, train=True)

    def training_step():
        model.feed(training, data, rows)
        for p in parameters:
            p.grad.zero()
        training.mean_loss.forward(clear_no_need_grad=True)
        training.mean_loss.backward(clear_buffer=True)


    batched = BatchedDirectional(model, batch_size=size)
    fast_hvp, nnabla_hvp = hessian_only(model, size, True), hessian_only(model, size, False)
    difference = gradient_difference(model, size)
    published = published_step(model, size)
    reference = PerSampleDirectional(model)
    pieces = [("training step", training_step, args.repeats),
              ("batched scoring step (default)", lambda: batched(data, rows, direction), args.repeats),
              ("HVP alone, fast rules", lambda: fast_hvp(data, rows, direction), args.repeats),
              ("HVP alone, nnabla rules", lambda: nnabla_hvp(data, rows, direction), args.repeats),
              ("per-sample inner products", lambda: per_sample_inner_products(model, data, rows, direction),
               max(args.repeats // 3, 3)),
              ("published-style step", lambda: published(data, rows, direction), max(args.repeats // 3, 3)),
              ("reference step", lambda: reference(data, rows, direction), max(args.repeats // 10, 3)),
              ("HVP by a gradient difference (not used)", lambda: difference(data, rows, direction), args.repeats)]
    results = []
    for name, function, repeats in pieces:
        print(f"timing: {name} ...", file=sys.stderr, flush=True)
        results.append((name,) + timings(function, repeats))
    base = results[0][1]
    lines = [f"{project.eval_network} network of {args.project}, minibatch of {size}, {model.parameter_count(True)} "
             "trainable parameters", "",
             "| piece | best ms | median ms | best / training step |", "|---|---|---|---|"]
    lines += [f"| {name} | {best * 1e3:.1f} | {median * 1e3:.1f} | {best / base:.2f} |" for name, best, median in results]
    nnabla_hvp(data, rows, direction)
    exact = [p.g.copy() for p in parameters]
    size_of = lambda arrays: np.sqrt(sum(float(np.sum(np.square(a))) for a in arrays))  # noqa: E731
    errors = [f"{e:g}: {size_of([a - b for a, b in zip(difference(data, rows, direction, e), exact)]) / size_of(exact):.3g}"
              for e in (1e-1, 1e-2, 1e-3, 1e-4)]
    lines += ["", "Relative error of the gradient-difference HVP against the double backward, by step e: "
              + ", ".join(errors) + "."]
    publish(("step_costs" if args.project == "mnist" else f"step_costs_{args.project}") +
            ("" if args.context == "cpu" else f"_{args.context}"), "\n".join(lines))


if __name__ == "__main__":
    main()
