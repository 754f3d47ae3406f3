"""Does a dataset fit the network? Checked once, before any training, with one sentence per problem."""
import numpy as np

from ..errors import UserError


def check_dataset(project, dataset):
    """Refuse a dataset that does not feed the network: a missing column, a sample of the wrong size, a bad label."""
    for data_name, shape in project.input_shapes.items():
        if data_name not in dataset.arrays:
            raise UserError(f"The dataset {dataset.path} has no column '{data_name}', which the network reads; "
                            f"its columns are {', '.join(dataset.header)}.")
        have = dataset.sample_shape(data_name)
        if int(np.prod(have)) != int(np.prod(shape)):
            raise UserError(f"The column '{data_name}' of {dataset.path} holds samples of shape {tuple(have)}, "
                            f"but the network expects {tuple(shape)}; resize the data or change the network's input.")
    for data_name, classes in project.label_ranges.items():
        labels = dataset.arrays[data_name].reshape(len(dataset), -1)
        if classes is None:  # a binary loss: targets are probabilities
            bad, expected = np.flatnonzero(((labels < 0) | (labels > 1)).any(axis=1)), "a number from 0 to 1"
        else:
            bad = np.flatnonzero((labels != np.round(labels)).any(axis=1) | (labels < 0).any(axis=1)
                                 | (labels >= classes).any(axis=1))
            expected = f"a class index from 0 to {classes - 1}"
        if bad.size:
            row = int(bad[0])
            raise UserError(f"Row {row + 2} of {dataset.path}: the label '{dataset.rows[row][dataset.column_of(data_name)]}' "
                            f"in column '{data_name}' is not {expected}; fix the label.")
