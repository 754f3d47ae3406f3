"""Is the model file a project nnabla can train? Checked before nnabla's loader sees it, one sentence per problem.

nnabla's own graph walk never ends on a cycle or on a loop it cannot unroll, and its loader fails
with messages a no-code user cannot act on; here each missing or broken part is named.
"""
from collections import OrderedDict

from ..errors import UserError
from ..training import step_size
from .model_file import network_proto, nnabla_quiet, variable_names

# Layers of recurrent networks, which nnabla unrolls before building the graph.
RECURRENT_LAYERS = ("Delay", "RecurrentInput", "RecurrentOutput", "RepeatStart", "RepeatEnd")


def check_structure(path, proto):
    """Refuse a model file that lacks what training needs, naming the missing part, before nnabla loads it."""
    if not proto.network:
        raise UserError(f"The model file {path} defines no network; export the whole project from Neural Network Console.")
    if not proto.optimizer:
        raise UserError(f"The model file {path} has no optimizer, so there is no training to replay; "
                        "use the results.nnp of a training run (it holds the training configuration).")
    if len(proto.optimizer) > 1:
        names = ", ".join(o.name for o in proto.optimizer)
        raise UserError(f"The model file {path} has {len(proto.optimizer)} optimizers ({names}); "
                        "only projects trained by a single optimizer are supported.")
    optimizer = proto.optimizer[0]
    network = network_proto(proto, optimizer.network_name)
    if network is None:
        raise UserError(f"The model file {path} has no training network: its optimizer trains the network "
                        f"'{optimizer.network_name}', which the file does not define; export the project again.")
    if not optimizer.loss_variable:
        raise UserError(f"The optimizer in {path} has no loss variable; set a loss layer at the end of the "
                        "training network in Neural Network Console and export the project again.")
    outputs = {name for function in network.function for name in function.output}
    for loss in optimizer.loss_variable:
        if loss.variable_name not in variable_names(network):
            raise UserError(f"The loss variable '{loss.variable_name}' named by the optimizer in {path} is not in the "
                            f"network '{network.name}'; export the project again.")
        if loss.variable_name not in outputs:
            raise UserError(f"The loss variable '{loss.variable_name}' named by the optimizer in {path} is the output "
                            f"of no layer of the network '{network.name}'; set a loss layer and export the project again.")
    in_loops = {v.name for v in network.variable if v.repeat_id}
    for name in [d.variable_name for d in optimizer.data_variable] + [v.variable_name for v in optimizer.loss_variable]:
        if name in in_loops:  # unrolled, it becomes one variable per repetition, which nothing feeds or reads
            raise UserError(f"The optimizer in {path} feeds or reads the variable '{name}', which is inside a loop "
                            f"(Repeat or Recurrent layers) of the network '{network.name}'; move that input or loss "
                            "layer outside the loop in Neural Network Console and export the project again.")
    used = {name for function in network.function for name in function.input}
    for parameter in optimizer.parameter_variable:
        # nnabla's loader hands the solver an unused parameter as None, and nnabla crashes (a segfault) on it.
        if parameter.variable_name in variable_names(network) and parameter.variable_name not in used:
            raise UserError(f"The optimizer in {path} updates the parameter '{parameter.variable_name}', which no layer "
                            f"of the network '{network.name}' uses; connect or delete that layer in Neural Network "
                            "Console and export the project again.")
    datasets = {d.name for d in proto.dataset}
    for name in optimizer.dataset_name:
        if name not in datasets:
            raise UserError(f"The model file {path} has no dataset '{name}', which its optimizer trains on; "
                            "set the training dataset in Neural Network Console's DATASET tab and export the project again.")
    solver = optimizer.solver.type
    step_size.check_supported("Sgd" if solver == "SGD" else solver, path)
    for network in proto.network:
        _check_graph(path, network)
    if any(network.repeat_info or any(f.type in RECURRENT_LAYERS for f in network.function) for network in proto.network):
        # Unrolled here first: nnabla's loader unrolls them too, and a loop it cannot unroll must be
        # refused by name before that loader (or the graph builder) can wait on it forever.
        from .network import unrolled_graph
        with nnabla_quiet():
            unrolled_graph(proto, path, param_scope=OrderedDict())


def _check_graph(path, network):
    """Refuse a network whose layers do not form a graph nnabla can run (nnabla's own walk never ends on a cycle)."""
    where = f"the network '{network.name}' in {path}"
    again = "; export the project again from Neural Network Console."
    variables = set()
    for variable in network.variable:
        if variable.name in variables:
            raise UserError(f"The variable '{variable.name}' is defined twice in {where}{again}")
        variables.add(variable.name)
        if any(d == 0 or d < -1 for d in variable.shape.dim):
            dims = ", ".join(str(d) for d in variable.shape.dim)
            raise UserError(f"The variable '{variable.name}' in {where} has the shape ({dims}), which holds no data{again}")
    names, producer = set(), {}
    for function in network.function:
        if function.name in names:
            raise UserError(f"The layer name '{function.name}' is used twice in {where}{again}")
        names.add(function.name)
        if not function.output:
            raise UserError(f"The layer '{function.name}' in {where} has no output{again}")
        for name in list(function.input) + list(function.output):
            if name not in variables:
                raise UserError(f"The layer '{function.name}' in {where} uses the variable '{name}', "
                                f"which the network does not define{again}")
        for name in function.output:
            if name in producer:
                raise UserError(f"The variable '{name}' is the output of both '{producer[name]}' and "
                                f"'{function.name}' in {where}{again}")
            producer[name] = function.name
    if network.repeat_info or any(f.type in RECURRENT_LAYERS for f in network.function):
        return  # nnabla unrolls these first; a Delay's input loops back by design
    # Kahn's algorithm: every layer must become ready once the layers before it have run.
    consumers = {}
    waiting = {}
    for function in network.function:
        parents = {producer[name] for name in function.input if name in producer}
        waiting[function.name] = len(parents)
        for parent in parents:
            consumers.setdefault(parent, []).append(function.name)
    ready = [name for name, count in waiting.items() if count == 0]
    done = 0
    while ready:
        name = ready.pop()
        done += 1
        for child in consumers.get(name, []):
            waiting[child] -= 1
            if waiting[child] == 0:
                ready.append(child)
    if done < len(waiting):
        stuck = next(name for name, count in waiting.items() if count > 0)
        raise UserError(f"The layers of {where} form a cycle (through '{stuck}'), so it cannot be computed{again}")
