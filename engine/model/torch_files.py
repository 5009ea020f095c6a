"""PyTorch model files before PyTorch reads them, and the reading: the checks that refuse a hostile or corrupt archive
from its records alone, then the program, the state dict or the pickled module it holds, as a ``torch.export``
program (:func:`load_program`, :func:`load_weights_or_module`).

A file from the wild is checked before any weight is read: a zip archive that would unpack to more than the weights
limit, a ``.pt2`` program whose weights config declares more bytes than its records hold, a ``torch.save`` pickle
whose storages do the same (read by simulating the pickle machine over its opcodes, with nothing unpickled), a
TorchScript archive. A state dict goes into the module the project's ``hooks.py`` builds; a whole pickled module is
unpickled only when the project trusts its file. :mod:`engine.model.torch` cuts what this returns.
"""

from __future__ import annotations

import json
import logging
import math
import pickle
import pickletools
import zipfile
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from engine.errors import ModelError
from engine.model.archives import check_archive_sizes, check_weight_count
from engine.model.base import ModelObjects

__all__ = ["archive_members", "load_program", "load_weights_or_module", "to_tensor", "torch"]


def to_tensor(t, a):
    """``torch.from_numpy`` of ``a`` made contiguous, copied when it is read-only (a memory map, a project's shared
    inputs): PyTorch warns of a tensor over memory it may not write, though the engine only reads it."""
    a = np.ascontiguousarray(a)
    return t.from_numpy(a if a.flags.writeable else a.copy())


def torch():
    """The ``torch`` module, imported on first use."""
    import torch as torch_

    return torch_


@contextmanager
def _quiet_export_log():
    """``torch.export.load`` logs a whole traceback before raising on a bad file; the caller says it in one line."""
    logger = logging.getLogger("torch.export")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)


def _is_description(name: str) -> bool:
    """Members of a PyTorch archive that describe the weights rather than hold them: the program's graph and
    weights' layout (``.json``), a state dict's pickle (``data.pkl``)."""
    return name.endswith((".json", ".pkl"))


def archive_members(path: Path) -> list[zipfile.ZipInfo]:
    """The members of a PyTorch zip archive, refused from its records before unpacking when it would unpack to more
    than the weights limit allows (:func:`engine.model.archives.check_archive_sizes`); ``[]`` when the file is not
    a zip archive."""
    if not zipfile.is_zipfile(path):
        return []
    return check_archive_sizes(path, _is_description)


#: Bytes per value of the dtypes a ``.pt2`` program's weights config names (``torch._export.serde.schema.ScalarType``).
_PT2_ITEMSIZE = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 2, 7: 4, 8: 8, 9: 4, 10: 8, 11: 16, 12: 1, 13: 2, 28: 2, 29: 1,
                 30: 1, 31: 1, 32: 1, 33: 1, 34: 4, 35: 8}


def _check_program_weights(path: Path, members: list[zipfile.ZipInfo]) -> None:
    """Refuse a ``.pt2`` program whose weights config declares more weights than the archive holds (a weight of
    100,000 x 100,000 in a record of 256 bytes), or more than ``LATENT_INSPECTOR_MAX_PARAMS``, from the config's
    shapes and the records' sizes alone, before PyTorch reads any weight.

    Raises
    ------
    ModelError
        Naming the weight, its declared shape and dtype, the bytes the archive holds for it, or the limit.
    """
    sizes = {item.filename: item.file_size for item in members}
    configs = [item.filename for item in members
               if item.filename.endswith(("/data/weights/model_weights_config.json",
                                          "/data/constants/model_constants_config.json"))]
    declared, biggest = 0, (0, "")
    with zipfile.ZipFile(path) as z:
        for name in configs:
            try:
                entries = json.loads(z.read(name)).get("config", {})
            except (ValueError, AttributeError, zipfile.BadZipFile, OSError) as exc:
                first = " ".join(str(exc).split())[:200]
                raise ModelError(f"{path}: {name} is not the JSON torch.export.save writes ({first}): the archive "
                                 "is corrupt") from None
            if not isinstance(entries, dict):
                continue
            for fqn, entry in entries.items():
                meta = entry.get("tensor_meta") if isinstance(entry, dict) else None
                if not isinstance(meta, dict) or not isinstance(meta.get("sizes"), list):
                    continue
                shape = [d.get("as_int") if isinstance(d, dict) else None for d in meta["sizes"]]
                if not all(isinstance(d, int) and not isinstance(d, bool) for d in shape):
                    continue  # a symbolic size: not a weight's; PyTorch checks it against the record
                if any(d < 0 for d in shape):
                    raise ModelError(f"{path}: weight {fqn!r} declares the shape {tuple(shape)}, with a negative "
                                     "size: the archive is corrupt")
                count = math.prod(shape)
                declared += count
                what = f"weight {fqn!r} of {' x '.join(f'{d:,}' for d in shape) or 'one value'}"
                biggest = max(biggest, (count, what))
                itemsize = _PT2_ITEMSIZE.get(meta.get("dtype"))
                record = f"{name.rsplit('/', 1)[0]}/{entry.get('path_name')}"
                if itemsize is None or entry.get("use_pickle") or record not in sizes:
                    continue  # an unknown dtype, a pickled tensor, a record elsewhere: PyTorch checks it on reading
                if count * itemsize > sizes[record]:
                    raise ModelError(f"{path}: {what} declares {count * itemsize:,} bytes, and the archive holds "
                                     f"{sizes[record]:,} for it ({record}): the file does not match its own "
                                     "program; refused before reading its weights")
    check_weight_count(path, declared, biggest[1])


#: Bytes per value of the storage classes a ``torch.save`` pickle names (``torch.FloatStorage``...).
_STORAGE_ITEMSIZE = {"UntypedStorage": 1, "ByteStorage": 1, "CharStorage": 1, "BoolStorage": 1, "ShortStorage": 2,
                     "HalfStorage": 2, "BFloat16Storage": 2, "IntStorage": 4, "FloatStorage": 4, "LongStorage": 8,
                     "DoubleStorage": 8, "ComplexFloatStorage": 8, "ComplexDoubleStorage": 16, "QUInt8Storage": 1,
                     "QInt8Storage": 1, "QInt32Storage": 4}
_MARK = object()


class _Global(str):
    """A class or function a pickle names (``"torch FloatStorage"``), as the stack simulation holds it."""


def _persistent_ids(data: bytes) -> list:
    """The persistent ids of a pickle (``("storage", torch.FloatStorage, "0", "cpu", 128)`` per tensor storage that
    ``torch.save`` wrote), read by simulating the pickle machine's stack over its opcodes: nothing is unpickled, no
    class is looked up, no code runs."""
    stack, memo, found = [], {}, []

    def to_mark():
        at = len(stack) - 1 - stack[::-1].index(_MARK)
        items = stack[at + 1:]
        del stack[at:]
        return items

    for op, arg, _ in pickletools.genops(data):
        name, before, after = op.name, op.stack_before, op.stack_after
        if name == "MARK":
            stack.append(_MARK)
        elif name in ("PUT", "BINPUT", "LONG_BINPUT"):
            memo[arg] = stack[-1]
        elif name == "MEMOIZE":
            memo[len(memo)] = stack[-1]
        elif name in ("GET", "BINGET", "LONG_BINGET"):
            stack.append(memo.get(arg))
        elif name == "GLOBAL":
            stack.append(_Global(arg))
        elif name == "STACK_GLOBAL":
            attr, module = stack.pop(), stack.pop()
            stack.append(_Global(f"{module} {attr}"))
        elif name == "TUPLE":
            stack.append(tuple(to_mark()))
        elif name in ("TUPLE1", "TUPLE2", "TUPLE3"):
            k = int(name[-1])
            items = tuple(stack[-k:])
            del stack[-k:]
            stack.append(items)
        elif name == "BINPERSID":
            found.append(stack.pop())
            stack.append(None)
        elif name == "PERSID":
            found.append(arg)
            stack.append(None)
        else:  # any other opcode: its documented stack effect, with placeholders for what it makes
            if pickletools.markobject in before:
                to_mark()
                del stack[len(stack) - before.index(pickletools.markobject):]
            elif before:
                if len(before) > len(stack):
                    raise ValueError(f"{name} at an empty stack")
                del stack[len(stack) - len(before):]
            stack.extend([arg if not before and len(after) == 1 else None] * len(after))
    return found


def _check_pickled_weights(path: Path, members: list[zipfile.ZipInfo]) -> None:
    """Refuse a ``torch.save`` archive whose pickle declares a tensor storage larger than the record that holds it,
    or more weights in all than ``LATENT_INSPECTOR_MAX_PARAMS``, from the pickle's opcodes and the records' sizes,
    before PyTorch reads any (its legacy loader allocated what the pickle declared first).

    Raises
    ------
    ModelError
        Naming the storage, its declared size and what the archive holds for it, or the limit.
    """
    sizes = {item.filename: item.file_size for item in members}
    pickles = [n for n in sizes if n == "data.pkl" or n.endswith("/data.pkl")]
    if len(pickles) != 1:
        return  # not torch.save's layout: PyTorch says what it is
    prefix = pickles[0][:-len("data.pkl")]
    try:
        with zipfile.ZipFile(path) as z:
            ids = _persistent_ids(z.read(pickles[0]))
    except Exception as exc:  # a truncated or hostile opcode stream: ValueError, IndexError, zipfile errors...
        first = " ".join(str(exc).split())[:160]
        raise ModelError(f"{path}: not a readable PyTorch file (the pickle in it is corrupt or truncated: "
                         f"{type(exc).__name__}: {first})") from None
    declared, biggest, seen = 0, (0, ""), set()
    for pid in ids:
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage" and isinstance(pid[2], str)
                and isinstance(pid[4], int) and not isinstance(pid[4], bool)) or pid[2] in seen:
            continue
        seen.add(pid[2])
        kind, key, count = str(pid[1]).split(" ")[-1], pid[2], pid[4]
        if count < 0:
            raise ModelError(f"{path}: storage {key!r} declares {count:,} values: the pickle is corrupt")
        declared += count
        biggest = max(biggest, (count, f"storage {key!r}, {count:,} values of {kind}"))
        record = f"{prefix}data/{key}"
        itemsize = _STORAGE_ITEMSIZE.get(kind)
        if itemsize is not None and record in sizes and count * itemsize > sizes[record]:
            raise ModelError(f"{path}: storage {key!r} declares {count:,} values of {kind} "
                             f"({count * itemsize:,} bytes), and the archive holds {sizes[record]:,} for it "
                             f"({record}): the file does not match its own pickle; refused before reading its weights")
    check_weight_count(path, declared, biggest[1])


def _check_archive(path: Path, names: list[str]) -> None:
    if not names:
        raise ModelError(f"{path}: not a complete PyTorch archive (not a readable zip file: truncated or not written "
                         "by torch.save / torch.export.save)")
    if any("/code/" in n for n in names) and any(n.endswith("constants.pkl") for n in names):
        raise ModelError(f"{path}: a TorchScript archive (torch.jit.save); its graph cannot be cut here. Export the "
                         "model with torch.export and save it with torch.export.save (a .pt2 file)")


def load_program(path: Path):
    t = torch()
    members = archive_members(path)
    names = [item.filename for item in members]
    _check_archive(path, names)
    if not any(n.endswith("archive_format") or n.endswith("models/model.json") for n in names):
        raise ModelError(f"{path}: not a torch.export program (.pt2 written by torch.export.save)")
    _check_program_weights(path, members)
    try:
        with _quiet_export_log():
            return t.export.load(str(path))
    except Exception as exc:
        raise ModelError(f"{path}: cannot read the torch.export program ({type(exc).__name__}: "
                         f"{str(exc).splitlines()[0][:200]}); is it complete, and written by a PyTorch no newer than "
                         f"{t.__version__}?") from exc


def _example(path: Path, objects: ModelObjects | None):
    if objects is None or objects.example_input is None:
        raise ModelError(f"{path}: tracing the module needs an example input batch; define example_input() in the "
                         "project's hooks.py, or give the project a data file")
    t = torch()
    try:
        example = objects.example_input()
    except Exception as exc:
        raise ModelError(f"{objects.origin}: example_input() failed ({type(exc).__name__}: {exc})") from exc
    example = to_tensor(t, np.asarray(example, dtype=np.float32))
    if example.ndim < 1 or len(example) < 1:
        raise ModelError(f"{objects.origin}: example_input() must return a batch of at least one sample")
    return example[:2] if len(example) >= 2 else example.repeat((2,) + (1,) * (example.ndim - 1))


def _export_module(module, path: Path, objects: ModelObjects | None):
    """``torch.export`` a module with a dynamic batch dimension (a fixed one if the module will not allow it)."""
    t = torch()
    module = module.eval()
    example = _example(path, objects)
    inputs = _conform_example(module, example)
    errors = []
    for dynamic in (True, False):
        for strict in (False, True):
            try:
                shapes = ({0: t.export.Dim("batch", min=1)},) if dynamic else None
                return t.export.export(module, (inputs,), dynamic_shapes=shapes, strict=strict)
            except Exception as exc:  # a graph break, data-dependent control flow, a batch-specialized shape...
                errors.append(f"{type(exc).__name__}: {str(exc).splitlines()[0][:160]}")
    raise ModelError(f"{path}: torch.export cannot trace the module that build_model() returns ({errors[0]}); "
                     "a module with data-dependent Python control flow cannot be cut into a graph")


def _conform_example(module, example):
    """The example batch, reshaped as the module's first layer expects when it is an image without its channel axis
    (the data's ``(n, 28, 28, 1)`` into a ``Conv2d``'s ``(n, 1, 28, 28)``)."""
    t = torch()
    first = next((m for m in module.modules() if isinstance(m, (t.nn.Conv1d, t.nn.Conv2d, t.nn.Conv3d))), None)
    if isinstance(first, t.nn.Conv2d) and example.ndim == 4 and example.shape[-1] == first.in_channels \
            and example.shape[1] != first.in_channels:
        return example.permute(0, 3, 1, 2).contiguous()
    if isinstance(first, t.nn.Conv2d) and example.ndim == 3 and first.in_channels == 1:
        return example[:, None]
    return example


def _state_dict_of(obj):
    if isinstance(obj, dict):
        for key in ("state_dict", "model_state_dict", "model"):
            if isinstance(obj.get(key), dict):
                return obj[key]
        return obj
    return None


def load_weights_or_module(path: Path, members: list[zipfile.ZipInfo], trust: bool, objects: ModelObjects | None):
    t = torch()
    names = [item.filename for item in members]
    if not names:
        raise ModelError(f"{path}: not a readable PyTorch file: not a zip archive, which torch.save has written since "
                         "PyTorch 1.6 (the file is truncated, corrupt, or in the legacy format, whose loader allocates "
                         "the sizes the file declares before reading them: load it with torch.load and save it again)")
    _check_archive(path, names)
    _check_pickled_weights(path, members)
    try:
        obj = t.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if "global" not in str(exc).lower():  # not a class the unpickler refused: a corrupt file
            raise ModelError(f"{path}: not a readable PyTorch file (the pickle in it is corrupt or truncated)") from exc
        if not trust:
            raise ModelError(
                f"{path}: holds a whole pickled object (torch.save(model)), and unpickling it runs arbitrary code from "
                "the file; save a torch.export program (.pt2) or a state dict with build_model() in hooks.py, or, "
                "only for a file you trust, set trust_model = true in project.toml") from exc
        try:
            obj = t.load(str(path), map_location="cpu", weights_only=False)
        except Exception as exc2:
            raise ModelError(f"{path}: cannot unpickle the module ({type(exc2).__name__}: {exc2}); the classes it "
                             "was saved with must be importable here (a .pt2 program needs none)") from exc2
    except Exception as exc:
        raise ModelError(f"{path}: not a readable PyTorch file ({type(exc).__name__}: "
                         f"{str(exc).splitlines()[0][:160]})") from exc
    if isinstance(obj, t.nn.Module):
        return _export_module(obj, path, objects), "pickle"
    state = _state_dict_of(obj)
    if state is None or not all(isinstance(v, t.Tensor) for v in state.values()):
        raise ModelError(f"{path}: holds a {type(obj).__name__}, expected a state dict of tensors "
                         "(torch.save(model.state_dict())) or a torch.export program")
    if objects is None or objects.build_model is None:
        raise ModelError(f"{path}: holds a state dict (weights only, {len(state)} tensors); define build_model() in "
                         "the project's hooks.py returning the torch.nn.Module they belong to, or save a "
                         "torch.export program (.pt2)")
    try:
        module = objects.build_model()
    except Exception as exc:
        raise ModelError(f"{objects.origin}: build_model() failed ({type(exc).__name__}: {exc})") from exc
    if not isinstance(module, t.nn.Module):
        raise ModelError(f"{objects.origin}: build_model() returned a {type(module).__name__}, expected a "
                         "torch.nn.Module")
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = " ".join(str(exc).split())[:300]
        raise ModelError(f"{path}: the weights do not fit the module build_model() returns ({first})") from exc
    return _export_module(module, path, objects), "state_dict"
