"""Small ONNX models for the ONNX framework's tests: graphs written with ``onnx.helper`` (explicit node names and
shapes, so the tests can name the tensors that cross a cut) and real exports of PyTorch modules (the names and the
extra shape computations an exporter writes).

Each builder writes one ``.onnx`` file into the folder it is given and returns its path.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

FLOAT = 1  # onnx.TensorProto.FLOAT


def _rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def _weight(name: str, *shape: int, seed: int = 0):
    from onnx import numpy_helper

    return numpy_helper.from_array(_rng(seed).normal(scale=0.5, size=shape).astype(np.float32), name)


def _save(nodes, inputs, outputs, initializers, path: Path, opset: int = 17) -> Path:
    import onnx
    from onnx import helper

    graph = helper.make_graph(nodes, path.stem, inputs, outputs, initializer=initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, path)
    return path


def _dense(name: str, x: str, n_in: int, n_out: int, seed: int, activation: str | None = None):
    """A ``Gemm`` node ``name`` (and an activation node ``name + '_' + activation`` after it), with its weights."""
    from onnx import helper

    nodes = [helper.make_node("Gemm", [x, f"{name}.w", f"{name}.b"], [name], name=name)]
    inits = [_weight(f"{name}.w", n_in, n_out, seed=seed), _weight(f"{name}.b", n_out, seed=seed + 100)]
    if activation:
        nodes.append(helper.make_node(activation, [name], [f"{name}_{activation.lower()}"],
                                      name=f"{name}_{activation.lower()}"))
    return nodes, inits


def mlp(folder: Path, batch: int | str = "n") -> Path:
    """``x (6) -> enc (MatMul + Add) -> Relu -> bottleneck (Gemm, 2) -> dec (Gemm) -> Sigmoid``: a chain, every
    tensor a valid cut. ``batch`` fixes the batch size (an int) or names the free one."""
    from onnx import helper

    nodes = [helper.make_node("MatMul", ["x", "enc.w"], ["enc_mm"], name="enc_matmul"),
             helper.make_node("Add", ["enc_mm", "enc.b"], ["enc"], name="enc"),
             helper.make_node("Relu", ["enc"], ["enc_relu"], name="enc_relu")]
    inits = [_weight("enc.w", 6, 5, seed=1), _weight("enc.b", 5, seed=2)]
    for name, x, n_in, n_out, act, seed in (("bottleneck", "enc_relu", 5, 2, None, 3), ("dec", "bottleneck", 2, 6,
                                                                                        "Sigmoid", 4)):
        more, weights = _dense(name, x, n_in, n_out, seed, act)
        nodes += more
        inits += weights
    suffix = "" if batch == "n" else f"_batch{batch}"
    return _save(nodes, [helper.make_tensor_value_info("x", FLOAT, [batch, 6])],
                 [helper.make_tensor_value_info("dec_sigmoid", FLOAT, [batch, 6])], inits,
                 folder / f"mlp{suffix}.onnx")


def residual(folder: Path) -> Path:
    """``x -> stem -> Relu -> [branch1 -> Relu -> branch2] + stem_relu -> add -> Relu -> head -> Softmax``: the cuts
    inside the block are crossed by ``stem_relu``."""
    from onnx import helper

    nodes, inits = [], []
    for name, x, n_in, n_out, act, seed in (("stem", "x", 4, 6, "Relu", 1), ("branch1", "stem_relu", 6, 6, "Relu", 2),
                                            ("branch2", "branch1_relu", 6, 6, None, 3)):
        more, weights = _dense(name, x, n_in, n_out, seed, act)
        nodes += more
        inits += weights
    nodes += [helper.make_node("Add", ["stem_relu", "branch2"], ["add"], name="add"),
              helper.make_node("Relu", ["add"], ["post"], name="post")]
    more, weights = _dense("head", "post", 6, 3, 4, "Softmax")
    return _save(nodes + more, [helper.make_tensor_value_info("x", FLOAT, ["n", 4])],
                 [helper.make_tensor_value_info("head_softmax", FLOAT, ["n", 3])], inits + weights,
                 folder / "residual.onnx")


def two_outputs(folder: Path) -> Path:
    """A shared trunk and two heads: ``classes`` (Softmax) and ``reconstruction`` (Sigmoid)."""
    from onnx import helper

    nodes, inits = [], []
    for name, x, n_in, n_out, act, seed in (("trunk", "x", 5, 4, "Relu", 1),
                                            ("class_logits", "trunk_relu", 4, 3, None, 2),
                                            ("recon", "trunk_relu", 4, 5, "Sigmoid", 3)):
        more, weights = _dense(name, x, n_in, n_out, seed, act)
        nodes += more
        inits += weights
    nodes.append(helper.make_node("Softmax", ["class_logits"], ["classes"], name="classes"))
    return _save(nodes, [helper.make_tensor_value_info("x", FLOAT, ["n", 5])],
                 [helper.make_tensor_value_info("classes", FLOAT, ["n", 3]),
                  helper.make_tensor_value_info("recon_sigmoid", FLOAT, ["n", 5])], inits, folder / "two_outputs.onnx")


def with_if(folder: Path) -> Path:
    """``x -> relu -> sum -> greater -> If -> sig``; both branches read ``relu`` from the main graph by name (then:
    ``relu * 2``, else: ``relu + 1``), so ``relu`` crosses the cuts at ``sum`` and ``greater``. The condition is
    the sum over the whole batch: the model is run on a batch at once."""
    from onnx import helper

    def branch(name, op, constant):
        node = helper.make_node(op, ["relu", constant], [f"{name}_out"], name=f"{name}_{op.lower()}")
        return helper.make_graph([node], name, [], [helper.make_tensor_value_info(f"{name}_out", FLOAT, None)])

    nodes = [helper.make_node("Relu", ["x"], ["relu"], name="relu"),
             helper.make_node("ReduceSum", ["relu"], ["sum"], keepdims=0, name="sum"),
             helper.make_node("Greater", ["sum", "zero"], ["greater"], name="greater"),
             helper.make_node("If", ["greater"], ["if"], name="if", then_branch=branch("then", "Mul", "two"),
                              else_branch=branch("else", "Add", "one")),
             helper.make_node("Sigmoid", ["if"], ["sig"], name="sig")]
    inits = [helper.make_tensor(name, FLOAT, [], [value]) for name, value in (("zero", 0.0), ("one", 1.0),
                                                                               ("two", 2.0))]
    return _save(nodes, [helper.make_tensor_value_info("x", FLOAT, ["n", 4])],
                 [helper.make_tensor_value_info("sig", FLOAT, ["n", 4])], inits, folder / "with_if.onnx")


def unsorted(folder: Path) -> Path:
    """A graph the ONNX checker rejects: a node reads a tensor that only a later node writes."""
    import onnx
    from onnx import helper

    graph = helper.make_graph([helper.make_node("Relu", ["a"], ["y"], name="second"),
                               helper.make_node("Relu", ["x"], ["a"], name="first")], "unsorted",
                              [helper.make_tensor_value_info("x", FLOAT, ["n", 3])],
                              [helper.make_tensor_value_info("y", FLOAT, ["n", 3])])
    path = folder / "unsorted.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return path


def external_data(folder: Path) -> Path:
    """:func:`mlp` saved with its weights in ``weights.bin`` next to it."""
    import onnx

    model = onnx.load(mlp(folder))
    path = folder / "external.onnx"
    onnx.save(model, path, save_as_external_data=True, all_tensors_to_one_file=True, location="weights.bin",
              size_threshold=0)
    return path


# -- real exports from PyTorch ----------------------------------------------------------------------------------


def torch_modules() -> dict:
    """Small PyTorch modules by name, each with a sample input ``(module, x)``, in eval mode."""
    import torch
    from torch import nn

    torch.manual_seed(0)

    class Residual(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = nn.Conv2d(1, 4, 3, padding=1)
            self.conv1 = nn.Conv2d(4, 4, 3, padding=1)
            self.conv2 = nn.Conv2d(4, 4, 3, padding=1)
            self.head = nn.Linear(4, 3)

        def forward(self, x):
            s = torch.relu(self.stem(x))
            h = self.conv2(torch.relu(self.conv1(s)))
            h = torch.relu(h + s)
            return self.head(h.mean(dim=(2, 3)))

    class UNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.enc = nn.Conv2d(1, 4, 3, padding=1)
            self.down = nn.Conv2d(4, 8, 3, stride=2, padding=1)
            self.up = nn.ConvTranspose2d(8, 4, 2, stride=2)
            self.dec = nn.Conv2d(8, 1, 3, padding=1)

        def forward(self, x):
            e = torch.relu(self.enc(x))
            u = torch.relu(self.up(torch.relu(self.down(e))))
            return torch.sigmoid(self.dec(torch.cat([e, u], dim=1)))

    class Recurrent(nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm = nn.LSTM(3, 6, batch_first=True)
            self.head = nn.Linear(6, 2)

        def forward(self, x):
            y, _ = self.lstm(x)
            return self.head(y[:, -1])

    cnn = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
                        nn.Conv2d(4, 8, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 4 * 4, 5),
                        nn.Softmax(dim=1))
    series = nn.Sequential(nn.Conv1d(2, 4, 5, padding=2), nn.ReLU(), nn.Conv1d(4, 4, 3, stride=2, padding=1),
                           nn.Tanh(), nn.Flatten(), nn.Linear(4 * 8, 1))
    rng = _rng(1)
    modules = {
        "cnn": (cnn, rng.normal(size=(3, 1, 8, 8))),
        "residual_cnn": (Residual(), rng.normal(size=(3, 1, 6, 6))),
        "unet": (UNet(), rng.normal(size=(3, 1, 8, 8))),
        "lstm": (Recurrent(), rng.normal(size=(3, 5, 3))),
        "series": (series, rng.normal(size=(3, 2, 16))),
    }
    for module, _ in modules.values():
        cnn[1].running_mean.uniform_(-0.5, 0.5)  # BatchNorm statistics that are not the identity
        cnn[1].running_var.uniform_(0.5, 2.0)
        module.eval()
    return {name: (module, x.astype(np.float32)) for name, (module, x) in modules.items()}


def export(module, x: np.ndarray, path: Path, *, dynamic_batch: bool = True) -> Path:
    """``torch.onnx.export`` (the ``torch.export`` based exporter) of ``module`` on the sample ``x``, with a free
    batch dimension unless ``dynamic_batch`` is false (then the batch size is ``len(x)``)."""
    import torch

    shapes = ({0: torch.export.Dim("batch")},) if dynamic_batch else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, (torch.from_numpy(x),), str(path), dynamo=True, dynamic_shapes=shapes,
                          verbose=False)
    return path


def blowup(folder: Path, width: int = 5_000_000_000) -> Path:
    """``x (6) -> enc (Gemm, 2) -> sum (ReduceSum, 1) -> wide (Expand to width) -> out (ReduceMean, 1)``: a file of a
    few hundred bytes whose ``wide`` tensor takes ``width`` floats a sample at run time (20 GB by default), as a
    hostile or broken graph can ask for."""
    from onnx import TensorProto, helper

    nodes, inits = _dense("enc", "x", 6, 2, 1)
    nodes += [helper.make_node("ReduceSum", ["enc", "axes"], ["sum"], name="sum", keepdims=1),
              helper.make_node("Expand", ["sum", "shape"], ["wide"], name="wide"),
              helper.make_node("ReduceMean", ["wide"], ["out"], name="out", axes=[1], keepdims=1)]
    inits += [helper.make_tensor("axes", TensorProto.INT64, [1], [1]),
              helper.make_tensor("shape", TensorProto.INT64, [2], [1, width])]
    return _save(nodes, [helper.make_tensor_value_info("x", FLOAT, ["n", 6])],
                 [helper.make_tensor_value_info("out", FLOAT, ["n", 1])], inits, folder / "blowup.onnx")
