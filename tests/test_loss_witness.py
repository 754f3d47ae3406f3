"""The training loss as `influence`'s second witness (scores/loss_witness.py), against an independent computation:
the normal quantile by bisection on math.erf, places counted row by row."""
import math

import numpy as np

from nnc_plugin.scores.loss_witness import (LOSS_WEIGHT, influence_order, loss_quantiles, typical_size,
                                             with_loss_witness)


def normal_quantile(p):
    low, high = -10.0, 10.0
    for _ in range(100):
        middle = (low + high) / 2
        if 0.5 * (1 + math.erf(middle / math.sqrt(2))) < p:
            low = middle
        else:
            high = middle
    return (low + high) / 2


def explicit(influence, losses, weight):
    """s_j = infl_j / (1.4826 median|infl - median|) + weight min(Phi^-1(q_j), 0), q_j: (rows with a higher loss +
    half the others with the same loss + 1/2) / N."""
    n = len(losses)
    spread = 1.4826 * np.median(np.abs(influence - np.median(influence)))
    out = []
    for j in range(n):
        place = sum(1 for k in range(n) if losses[k] > losses[j]) + (sum(1 for k in range(n) if losses[k] == losses[j]) - 1) / 2
        out.append(influence[j] / spread + weight * min(normal_quantile((place + 0.5) / n), 0.0))
    return np.array(out)


def test_the_order_is_the_documented_formula():
    rng = np.random.RandomState(0)
    influence = rng.standard_t(3, 300) * 1e-3
    losses = np.round(rng.exponential(0.5, 300), 2)  # rounded: some rows share a loss
    np.testing.assert_allclose(with_loss_witness(influence, losses), explicit(influence, losses, LOSS_WEIGHT),
                               rtol=0, atol=1e-9)


def test_only_the_higher_loss_half_moves_and_by_a_bounded_amount():
    rng = np.random.RandomState(1)
    influence, losses = rng.normal(0, 1e-4, 1000), rng.exponential(1.0, 1000)
    moved = with_loss_witness(influence, losses) - influence / typical_size(influence)
    low_loss = losses < np.median(losses)
    assert np.all(moved[low_loss] == 0) and np.all(moved[~low_loss] <= 0)
    assert moved.min() >= LOSS_WEIGHT * normal_quantile(0.5 / 1000) - 1e-9
    assert moved[np.argmax(losses)] == moved.min()  # the highest loss moves most


def test_a_row_influence_calls_clearly_harmful_stays_ahead_of_rows_only_the_loss_accuses():
    """A fitted row that taught a shortcut (influence 3 spreads down, lowest loss) keeps its place ahead of an
    ordinary row with the highest training loss; a wrong label that both accuse comes first."""
    rng = np.random.RandomState(2)
    influence, losses = rng.normal(0, 1.0, 500), rng.exponential(1.0, 500)
    influence[0], losses[0] = -3.0 * typical_size(influence), 0.0  # the shortcut row
    influence[1], losses[1] = 0.0, 100.0  # a hard row influence calls ordinary
    influence[2], losses[2] = -1.5 * typical_size(influence), 50.0  # a wrong label
    order = list(np.argsort(with_loss_witness(influence, losses)))
    assert order.index(2) < order.index(0) < order.index(1)


def test_no_loss_weight_is_influence_alone_and_odd_inputs_are_handled():
    influence = np.array([-2.0, 0.0, 0.0, 0.0, 1.0])
    assert np.all(np.argsort(with_loss_witness(influence, np.arange(5.0), 0.0)) == np.argsort(influence))
    assert typical_size(influence) > 0  # over half the values equal: the mean absolute deviation
    assert typical_size(np.zeros(4)) == 1.0
    quantiles = loss_quantiles(np.array([1.0, np.nan, 3.0, 2.0, 2.0]))
    assert quantiles[2] < quantiles[3] == quantiles[4] < quantiles[0]  # highest loss first, ties alike
    assert quantiles[1] == quantiles[3]  # a loss that is not finite counts as the median


def test_a_group_the_network_fits_turns_the_witness_around_in_its_class_and_one_it_gets_wrong_keeps_it():
    """Rows of one label that act together and that the network fits (a shortcut's, outputs/groups.py): the other
    labels are ordered by influence alone (the hard clean rows the witness would bring in are rows the network
    needs), and inside the group's label the rows the network finds hard (the clean ones that lack the shortcut)
    move back by the witness's amount. The same group with high training losses (wrong labels between two
    look-alike classes) keeps the witness, and so do rows with no group."""
    rng = np.random.RandomState(3)
    influence, losses = rng.normal(0, 1.0, 400), rng.exponential(1.0, 400)
    labels = np.array([str(c) for c in rng.randint(0, 10, 400)])
    group = np.arange(40)
    influence[group], labels[group] = -3.0 - rng.rand(40), "7"
    fitted, misfit = losses.copy(), losses.copy()
    fitted[group], misfit[group] = 0.01 * rng.rand(40), 5.0 + rng.rand(40)
    order, alone, witness = (influence_order(influence, fitted, labels), with_loss_witness(influence, fitted, 0.0),
                             with_loss_witness(influence, fitted))
    sevens = labels == "7"
    np.testing.assert_array_equal(order[~sevens], alone[~sevens])
    np.testing.assert_allclose(order[sevens] - alone[sevens], alone[sevens] - witness[sevens])
    assert np.all(order[sevens] >= alone[sevens]) and np.any(order[sevens] > alone[sevens])
    np.testing.assert_array_equal(order[group], alone[group])  # the fitted rows themselves stay where they are
    np.testing.assert_array_equal(influence_order(influence, misfit, labels), with_loss_witness(influence, misfit))
    shuffled = labels.copy()
    shuffled[group] = [str(c) for c in rng.randint(0, 10, 40)]  # the same rows, their labels spread: no group
    np.testing.assert_array_equal(influence_order(influence, fitted, shuffled), with_loss_witness(influence, fitted))
