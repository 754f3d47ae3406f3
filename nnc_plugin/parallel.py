"""One job on several processes: `mpiexec -n K nnc-cleanse score ...`.

`world()` returns the communicator of the run: `SingleProcess` without MPI (nothing changes), or
`MpiCommunicator` (mpi4py, on CPU) when the command was started by mpiexec with more than one
process. Two ways to use K processes (pipeline.py chooses):
- trials: with --n-trials K or more, process r trains and scores trials r, r+K, ...;
- data-parallel: every process takes its slice of every minibatch (`share`); training gradients,
  Hessian-vector products and the validation gradient are summed over the processes
  (`sum_arrays`), per-row values are combined (`sum_arrays` of disjoint rows), and process 0 alone
  writes the outputs and the cache.
"""
import os

import numpy as np

from .errors import UserError

# Variables that MPI launchers (MPICH and Intel MPI, Open MPI, MVAPICH) set in every process they start.
_SIZE_VARIABLES = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE")


class SingleProcess:
    """The communicator of a run on one process: every collective operation returns its input."""
    rank = 0
    size = 1

    @property
    def is_root(self):
        return self.rank == 0

    def share(self, indices):
        """This process's part of `indices` (contiguous, nearly equal parts, in order)."""
        return np.array_split(np.asarray(indices), self.size)[self.rank]

    def sum_arrays(self, arrays):
        """The element-wise sum over the processes of a list of numpy arrays (a new list)."""
        return list(arrays)

    def gather(self, value):
        """[value of process 0, value of process 1, ...] on every process."""
        return [value]

    def broadcast(self, value):
        """Process 0's value, on every process."""
        return value

    def barrier(self):
        pass

    def abort(self, code):
        pass


class MpiCommunicator(SingleProcess):
    """MPI_COMM_WORLD through mpi4py (CPU: the arrays travel through host memory)."""

    def __init__(self):
        from mpi4py import MPI
        self._mpi = MPI
        self._comm = MPI.COMM_WORLD
        self.rank = self._comm.Get_rank()
        self.size = self._comm.Get_size()

    def sum_arrays(self, arrays):
        arrays = [np.ascontiguousarray(a) for a in arrays]
        if not arrays:
            return []
        # one message for all arrays: concatenate in float64 so the sum loses nothing, then split again
        flat = np.concatenate([a.astype(np.float64).ravel() for a in arrays])
        total = np.empty_like(flat)
        self._comm.Allreduce(flat, total, op=self._mpi.SUM)
        out, start = [], 0
        for a in arrays:
            out.append(total[start:start + a.size].reshape(a.shape).astype(a.dtype))
            start += a.size
        return out

    def gather(self, value):
        return self._comm.allgather(value)

    def broadcast(self, value):
        return self._comm.bcast(value, root=0)

    def barrier(self):
        self._comm.Barrier()

    def abort(self, code):
        self._comm.Abort(code)


def launched_size():
    """How many processes the launcher says this run has (1 without a launcher)."""
    for name in _SIZE_VARIABLES:
        if os.environ.get(name, "").isdigit():
            return int(os.environ[name])
    return 1


_WORLD = None


def world_if_made():
    """The communicator, if this run has made it (None before)."""
    return _WORLD


def current_rank():
    """This process's rank in the run (0 before the communicator is made, and without MPI)."""
    return _WORLD.rank if _WORLD is not None else 0


def world():
    """The communicator of this run (made once)."""
    global _WORLD
    if _WORLD is None:
        if launched_size() <= 1:
            _WORLD = SingleProcess()
        else:
            try:
                _WORLD = MpiCommunicator()
            except ImportError:
                raise UserError("This run was started by mpiexec with several processes, but mpi4py is not "
                                "installed in this Python; install it with pip install -e \".[mpi]\" "
                                "(docs/usage.md), or run without mpiexec.")
    return _WORLD
