"""Candidate rankings for harm that a loss cannot see (rows labelled right that still hurt the validation data).

Each is a `Ranking` subclass tried through `registry.trying` by research/harm.py; none is registered in the
package. Sign as everywhere: lower = more harmful. With u the validation gradient, c the solver's step factors
and v = c u, a training step on row j changes the validation loss by about -eta v . grad l_j, so a row whose
v . grad l_j is negative raised it. By the chain rule v . grad l_j = e_j . zdot_j, with e_j = dl_j/dz_j the
row's error in the network's logits z (p - y for softmax cross-entropy) and zdot_j = J_j v how the row's logits
move along v (two forward passes per row, a finite difference of the logits). The candidates:

  tracin-final       e_j . zdot_j at the final parameters, u the validation gradient averaged over the last
                     epoch (the first-order influence of the row's next step)
  conflict-final     (e_j / |e_j|) . zdot_j at the final parameters: the same with the row's error normalised
                     away, so that a row the network fits already counts by the direction it pulls in, not by how
                     wrong it still is (the harm of a fitted row that taught a shortcut)
  (conflict-points, the same averaged over the 8 points of the last epoch, and the exact and last-layer
  cosines at those points need parameter files the cache no longer keeps: commit fc6ab53; their numbers are in
  research/results/harm_candidates_seed0.md)
  conflict-epochs    conflict averaged over the ends of every epoch of training (a bare .nntxt only: from a
                     trained model it has the trained start and the continued epoch's end)
  influence-conflict the influence ranking's direction (vbar: the recursion of scores/influence.py) in place
                     of v, normalised as conflict-final
  influence-cosine   influence with |zdot_j| divided out too (-sqrt: its square root): a row whose logits vbar
                     barely moves counts as one it moves much
  influence-class-weighted, influence-class-sqrt
                     influence from the validation rows weighted by class, |G_c| ** -1 or -1/2 (G_c: class c's
                     validation gradient at the final parameters), the last epoch's points kept
  influence-alone    influence without the training loss as its second witness (loss_weight 0)
  (influence-final-only, influence-balanced, influence-sqrt: results/colour_probes.md)
"""
import numpy as np

from nnc_plugin.scores.influence import SNAPSHOTS, Influence
from nnc_plugin.scores.registry import Ranking, ReportText

SIGNED = ReportText("its conflict with the validation data", True, "Most harmful samples", "", "Most helpful", "")


def logit_motion(model, dataset, direction, batch_size, epsilon=1e-3):
    """(z: every row's logits at the model's parameters, zdot: their derivative along `direction`), float64, by a
    central finite difference of two forward passes (z is the mean of the two sides: exact to O(h^2))."""
    from nnc_plugin.scores.gradients import norm
    parameters = list(model.parameters.values())
    original = [p.d.copy() for p in parameters]
    step = epsilon * norm(original) / max(norm(direction), 1e-30)
    sides = []
    for sign in (1.0, -1.0):
        for p, x, d in zip(parameters, original, direction):
            p.d = x + sign * step * d
        logits = None
        for batch, graph in model.evaluate_batches(dataset, batch_size):
            if logits is None:
                logits = np.zeros((len(dataset), int(np.prod(graph.logits.shape[1:]))))
            logits[batch] = graph.logits.d[:len(batch)].reshape(len(batch), -1)
        sides.append(logits)
    for p, x in zip(parameters, original):
        p.d = x
    return (sides[0] + sides[1]) / 2.0, (sides[0] - sides[1]) / (2.0 * step)


def logit_errors(model, dataset, logits):
    """e_j = dl_j / dz_j for a softmax cross-entropy loss: p - onehot(y), in float64 from the logits."""
    graph = model.loss_graph(2)
    if graph.link != "Softmax" or graph.loss_type != "CategoricalCrossEntropy":
        raise ValueError("these research candidates handle Softmax + CategoricalCrossEntropy networks")
    labels = dataset.arrays[graph.target_column].reshape(len(dataset), -1)[:, 0].astype(int)
    shifted = logits - logits.max(axis=1, keepdims=True)
    p = np.exp(shifted) / np.exp(shifted).sum(axis=1, keepdims=True)
    p[np.arange(len(labels)), labels] -= 1.0
    return p


def conflict(model, dataset, direction, batch_size, normalised=True):
    """Every row's e_j . zdot_j along `direction` (normalised: e_j / |e_j| in place of e_j)."""
    logits, motion = logit_motion(model, dataset, direction, batch_size)
    errors = logit_errors(model, dataset, logits)
    if normalised:
        errors = errors / np.maximum(np.linalg.norm(errors, axis=1, keepdims=True), 1e-12)
    return np.einsum("ij,ij->i", errors, motion)


def stepped(trial, u):
    """v = c u: the validation gradient through the solver's final step factors (TracIn-CP's direction)."""
    factors = trial.step_factors("final")(len(trial.record.schedule) - 1)
    return [(c * a).astype(np.float32) for c, a in zip(factors, u)]


def validation_direction(trial):
    from nnc_plugin.scores.gradients import validation_gradient
    u, _ = validation_gradient(trial.model, trial.val_data, trial.batch_size)
    return stepped(trial, u)


class _Candidate(Ranking):
    needs_validation = True
    report = SIGNED
    normalised = True

    def score(self, trial):
        direction = stepped(trial, Influence().starting_gradient(trial))
        return conflict(trial.model, trial.train_data, direction, trial.batch_size, self.normalised)


class TracInFinal(_Candidate):
    name, snapshots, normalised = "tracin-final", SNAPSHOTS, False


class ConflictFinal(_Candidate):
    name, snapshots = "conflict-final", SNAPSHOTS


class ConflictEpochs(_Candidate):
    name, checkpoints = "conflict-epochs", 1000  # every epoch end training has

    def score(self, trial):
        model, final = trial.model, trial.model.parameter_arrays()
        last = trial.record.checkpoints[-1][0]
        total = np.zeros(len(trial.train_data))
        for epoch, _ in trial.record.checkpoints:
            if epoch != last:
                trial.cache.load_checkpoint(epoch, model)
            total += conflict(model, trial.train_data, validation_direction(trial), trial.batch_size)
            model.set_parameter_arrays(final)
        return total / len(trial.record.checkpoints)


class InfluenceConflict(Influence):
    name, report = "influence-conflict", SIGNED

    def direction(self, trial):
        """vbar: the package's influence direction (scores/influence.py), search, depth and bound included."""
        from nnc_plugin.scores.influence import search_and_depth
        from nnc_plugin.scores.class_directions import find_class_directions
        from nnc_plugin.scores.recursion import PropagationSettings, expected_direction
        u = self.starting_gradient(trial)
        search, max_steps = search_and_depth(self, trial)
        schedule = trial.schedule_back(max_steps)
        directions = find_class_directions(trial.model, trial.train_data, trial.batch_size, search) if search else None
        settings = PropagationSettings(weight_decay=trial.project.weight_decay, class_directions=directions,
                                       max_steps=max_steps)
        vbar, _ = expected_direction(trial.model, trial.train_data, schedule, u, trial.linearisation("final", schedule),
                                     settings)
        return vbar

    def score(self, trial):
        return conflict(trial.model, trial.train_data, self.direction(trial), trial.batch_size)


class InfluenceCosine(InfluenceConflict):
    """`influence` with the size of the row's logit motion divided out too (|zdot_j| ** motion_power): the cosine
    between the row's error and how vbar moves its logits at power 1. A row whose logits the validation direction
    barely moves (on colour images, a dim or low-contrast one) then counts by its direction as a bright one does."""
    name, motion_power = "influence-cosine", 1.0

    def score(self, trial):
        from nnc_plugin.scores.gradients import logit_motion as motion_of, output_errors
        from nnc_plugin.scores.registry import Scores
        logits, motion = motion_of(trial.model, trial.train_data, self.direction(trial), trial.batch_size)
        errors = output_errors(trial.model, trial.train_data, logits, trial.batch_size)
        plain = np.einsum("ij,ij->i", errors, motion)
        sizes = np.maximum(np.linalg.norm(errors, axis=1), 1e-300)
        motions = np.maximum(np.linalg.norm(motion, axis=1), 1e-300) ** self.motion_power
        return Scores(plain / sizes / motions, effects=plain)


class InfluenceCosineSqrt(InfluenceCosine):
    name, motion_power = "influence-cosine-sqrt", 0.5


class InfluenceHalfNormalised(Influence):
    """`influence` with each row's score divided by the square root of its error's size instead of the size: between
    the plain expected influence (a misfit row weighs by how wrong it is) and the package's (only its direction)."""
    name, report, loss_weight = "influence-sqrt", SIGNED, 0.0  # values / effects must be 1 / |e_j|

    def score(self, trial):
        scores = super().score(trial)
        size = np.abs(scores.effects) / np.maximum(np.abs(scores.values), 1e-300)  # |e_j|
        return type(scores)(scores.values * np.sqrt(size), effects=scores.effects)


class InfluenceAlone(Influence):
    """`influence` without the training loss as a second witness (scores/loss_witness.py): its scores rescaled."""
    name, report, loss_weight = "influence-alone", SIGNED, 0.0


class InfluenceFinalOnly(Influence):
    """`influence` from the validation gradient at the final parameters alone (no snapshots of the last epoch)."""
    name, report, snapshots = "influence-final-only", SIGNED, 0


def class_balanced_gradient(trial):
    """The sum over the classes of the unit-length gradient of the validation loss over that class's rows, at the
    final parameters: every class counts alike, however well the network already fits it."""
    from nnc_plugin.scores.gradients import norm
    model, val = trial.model, trial.val_data
    labels = val.arrays[next(iter(trial.project.label_ranges))].reshape(-1).astype(int)
    total = None
    for c in np.unique(labels):
        gradient, _ = model.loss_gradient(val.subset(np.flatnonzero(labels == c)), trial.batch_size)
        unit = [g / max(norm(gradient), 1e-30) for g in gradient]
        total = unit if total is None else [t + g for t, g in zip(total, unit)]
    return [t.astype(np.float32) for t in total]


class InfluenceBalanced(Influence):
    """`influence-final-only` from `class_balanced_gradient` instead of the validation gradient: a wrong label
    that harms a class the network already gets right still shows."""
    name, report, snapshots = "influence-balanced", SIGNED, 0

    def score(self, trial):
        from nnc_plugin.scores.gradients import normalised_directional
        from nnc_plugin.scores.influence import search_and_depth
        from nnc_plugin.scores.recursion import PropagationSettings, expected_direction
        from nnc_plugin.scores.registry import Scores
        search, max_steps = search_and_depth(self, trial)
        schedule = trial.schedule_back(max_steps)
        settings = PropagationSettings(weight_decay=trial.project.weight_decay, max_steps=max_steps)
        vbar, _ = expected_direction(trial.model, trial.train_data, schedule, class_balanced_gradient(trial),
                                     trial.linearisation("final", schedule), settings)
        values, plain = normalised_directional(trial.model, trial.train_data, vbar, trial.batch_size)
        return Scores(values, effects=plain)


class InfluenceClassWeighted(Influence):
    """`influence` from the validation gradient over the last epoch (the package's 9 points, each validation row at
    one of them), every validation row weighted by its class: w_c proportional to |G_c| ** -class_power, G_c the
    gradient of class c's mean validation loss at the final parameters (the weights' mean over the rows 1). A wrong
    label between two classes the network already separates on the validation data (its gradient there is small)
    then still counts. The probe takes the snapshots' parameters from a per-step parameter cache (a research
    shortcut: the package would keep C parameter-sized sums, or take the weights at the epoch's start)."""
    name, report, class_power = "influence-class-weighted", SIGNED, 1.0

    @property
    def keeps_step_parameters(self):
        return True

    def starting_gradient(self, trial):
        from nnc_plugin.scores.gradients import norm
        from nnc_plugin.training.snapshots import snapshot_positions, validation_parts
        from nnc_plugin.training.trainer import steps_per_epoch
        model, val, batch = trial.model, trial.val_data, trial.batch_size
        labels = val.arrays[trial.model.loss_graph(2).target_column].reshape(len(val), -1)[:, 0].astype(int)
        classes = np.unique(labels)
        sizes = {c: norm(model.loss_gradient(val.subset(np.flatnonzero(labels == c)), batch)[0]) for c in classes}
        weights = {c: max(sizes[c], 1e-30) ** -self.class_power for c in classes}
        mean = np.mean([weights[c] for c in labels])
        weights = {c: w / mean for c, w in weights.items()}
        positions = snapshot_positions(SNAPSHOTS, steps_per_epoch(len(trial.train_data), batch))
        parts = validation_parts(len(val), 1 + len(positions), trial.seed + 5)
        final = model.parameter_arrays()
        total = None
        for k, part in enumerate(parts):
            if k:  # part k at the parameters before traced step positions[k - 1] (snapshots.py's points)
                trial.cache.load_step_parameters(positions[k - 1], model)
            for c in classes:
                rows = part[labels[part] == c]
                if len(rows):
                    gradient = model.loss_gradient(val.subset(rows), batch)[0]
                    scaled = [g.astype(np.float64) * (weights[c] * len(rows) / len(val)) for g in gradient]
                    total = scaled if total is None else [t + g for t, g in zip(total, scaled)]
            model.set_parameter_arrays(final)
        return [t.astype(np.float32) for t in total]


class InfluenceClassSqrt(InfluenceClassWeighted):
    name, class_power = "influence-class-sqrt", 0.5


class InfluenceStepPoints(InfluenceClassWeighted):
    """The same code with every class alike (class_power 0): the package's start recomputed from the per-step
    cache, the check that the probe's points are the package's."""
    name, class_power = "influence-step-points", 0.0


CANDIDATES = (TracInFinal, ConflictFinal, ConflictEpochs, InfluenceConflict, InfluenceCosine, InfluenceCosineSqrt,
              InfluenceAlone, InfluenceHalfNormalised,
              InfluenceFinalOnly, InfluenceBalanced, InfluenceClassWeighted, InfluenceClassSqrt, InfluenceStepPoints)


def exact_cosine(model, dataset, direction):
    """cos(direction, grad l_j) for every row, from one batch-size-1 backward pass per row (the exact reference)."""
    parameters = list(model.parameters.values())
    graph = model.loss_graph(1, train=False)
    flat = np.concatenate([np.ravel(d) for d in direction]).astype(np.float64)
    values = np.zeros(len(dataset))
    for row in range(len(dataset)):
        model.feed(graph, dataset, np.array([row]))
        for p in parameters:
            p.grad.zero()
        graph.mean_loss.forward(clear_no_need_grad=True)
        graph.mean_loss.backward(clear_buffer=True)
        gradient = np.concatenate([p.g.ravel() for p in parameters]).astype(np.float64)
        values[row] = gradient @ flat / max(np.linalg.norm(gradient) * np.linalg.norm(flat), 1e-30)
    return values


def last_layer_cosine(model, dataset, direction, batch_size):
    """cos(direction, grad l_j) restricted to the last Affine layer (weights W: inputs x classes, bias b): there
    grad_W l_j = h_j e_j^T and grad_b l_j = e_j, with h_j the row's features and e_j = p_j - y_j, from one forward
    pass per row."""
    shapes = [tuple(p.shape) for p in model.parameters.values()]
    feats, logits = [], []
    for batch, graph in model.evaluate_batches(dataset, batch_size):
        feats.append(graph.features.d[:len(batch)].reshape(len(batch), -1).astype(np.float64))
        logits.append(graph.logits.d[:len(batch)].reshape(len(batch), -1).astype(np.float64))
    h, z = np.concatenate(feats), np.concatenate(logits)
    e = logit_errors(model, dataset, z)
    at_w = next(i for i, s in enumerate(shapes) if s == (h.shape[1], e.shape[1]))
    at_b = next(i for i, s in enumerate(shapes) if s == (e.shape[1],) and i > at_w)
    u_w, u_b = np.asarray(direction[at_w], np.float64), np.asarray(direction[at_b], np.float64)
    dots = np.einsum("ij,jk,ik->i", h, u_w, e) + e @ u_b
    norms = np.linalg.norm(e, axis=1) * np.sqrt(np.sum(h * h, axis=1) + 1.0)
    return dots / np.maximum(norms * np.sqrt(np.sum(u_w * u_w) + np.sum(u_b * u_b)), 1e-30)


def at_points(trial, measure, points):
    """The mean of `measure(direction)` over `points` ("final", "epochs": every epoch end), each point with its own
    plain validation gradient as the direction."""
    from nnc_plugin.scores.gradients import validation_gradient
    model, final = trial.model, trial.model.parameter_arrays()
    loads = {"final": [None],
             "epochs": [None if e == trial.record.checkpoints[-1][0] else ("checkpoint", e)
                        for e, _ in trial.record.checkpoints]}[points]
    total = np.zeros(len(trial.train_data))
    for load in loads:
        if load:
            getattr(trial.cache, f"load_{load[0]}")(load[1], model)
        u, _ = validation_gradient(model, trial.val_data, trial.batch_size)
        total += measure(trial, u)
        model.set_parameter_arrays(final)
    return total / len(loads)


def _cosine_ranking(name, exact, points):
    def measure(trial, u):
        if exact:
            return exact_cosine(trial.model, trial.train_data, u)
        return last_layer_cosine(trial.model, trial.train_data, u, trial.batch_size)
    settings = {"name": name, "needs_validation": True, "report": SIGNED, "checkpoints": 1000 if points == "epochs" else 0,
                "score": lambda self, trial: at_points(trial, measure, points)}
    return type(name.replace("-", "_"), (Ranking,), settings)


COSINES = tuple(_cosine_ranking(f"{kind}cosine-{points}", kind == "", points)
                for kind in ("", "last-") for points in ("final", "epochs"))
CANDIDATES = CANDIDATES + COSINES
