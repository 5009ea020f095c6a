"""A Keras file whose architecture declares more weights than it holds, or than the server's limit, is refused before
Keras builds anything (engine.model.keras_files.check_declared_size): building a Dense of 2,000,000,000 units would
allocate 16 GB first."""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pytest

from engine.errors import ModelError
from engine.model import archives, load_model
from engine.model.keras_files import declared_weights, held_weights, read_config

REPO = Path(__file__).resolve().parents[1]
HUGE = 2_000_000_000


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    import keras
    from keras import layers

    root = tmp_path_factory.mktemp("size")
    model = keras.Sequential([keras.Input((8,), name="x"), layers.Dense(16, activation="relu", name="hidden"),
                              layers.Dense(4, name="big")])
    for ext in (".keras", ".h5"):
        model.save(root / f"small{ext}")
    return root


def _set_units(config: dict, layer: str, units: int) -> None:
    for entry in config["config"]["layers"]:
        if entry.get("config", {}).get("name") == layer:
            entry["config"]["units"] = units
            return
    raise AssertionError(f"no layer {layer}")


def _hostile_keras(src: Path, dst: Path) -> Path:
    """``src`` with its last Dense declaring 2,000,000,000 units in config.json, the weights left as they are."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for item in zin.infolist():
            data = zin.read(item.filename)
            if item.filename == "config.json":
                config = json.loads(data)
                _set_units(config, "big", HUGE)
                data = json.dumps(config).encode()
            zout.writestr(item, data)
    return dst


def _hostile_h5(src: Path, dst: Path) -> Path:
    shutil.copy(src, dst)
    with h5py.File(dst, "r+") as f:
        raw = f.attrs["model_config"]
        config = json.loads(raw.decode() if isinstance(raw, bytes) else raw)
        _set_units(config, "big", HUGE)
        f.attrs["model_config"] = json.dumps(config)
    return dst


@pytest.mark.parametrize("ext", [".keras", ".h5"])
def test_a_config_declaring_more_weights_than_the_file_holds_is_refused_before_building(small, tmp_path, ext,
                                                                                        monkeypatch):
    src = small / f"small{ext}"
    hostile = (_hostile_keras if ext == ".keras" else _hostile_h5)(src, tmp_path / f"hostile{ext}")
    held = held_weights(src)
    assert held == 8 * 16 + 16 + 16 * 4 + 4  # the two kernels and biases, counted from shapes alone
    with pytest.raises(ModelError) as info:  # over the default limit of 1,000,000,000 weights
        load_model(hostile)
    message = str(info.value)
    assert str(hostile) in message and "layer 'big', Dense with 2,000,000,000 units" in message
    assert "more than this server loads (1,000,000,000" in message and "refused before building it" in message
    monkeypatch.setenv("LATENT_INSPECTOR_MAX_PARAMS", str(10**13))  # a server that would build it: the file does
    with pytest.raises(ModelError) as info:                        # not hold what it declares
        load_model(hostile)
    assert f"holds {held:,}: the file does not match its own architecture" in str(info.value)
    assert load_model(src).count_params() == held  # the file it came from loads


def test_a_configurable_limit_refuses_what_this_server_will_not_build(small, monkeypatch):
    monkeypatch.setenv("LATENT_INSPECTOR_MAX_PARAMS", "30")  # the Dense layers declare at least 40
    with pytest.raises(ModelError, match=r"more than this server loads \(30; LATENT_INSPECTOR_MAX_PARAMS sets it\)"):
        load_model(small / "small.keras")
    monkeypatch.setenv("LATENT_INSPECTOR_MAX_PARAMS", "not a number")  # the default then: 1,000,000,000
    assert load_model(small / "small.keras") is not None


def test_no_model_we_know_declares_more_than_it_holds(model_files):
    """No false refusal: every kind of model the tests build (convolutions, recurrent layers, embeddings, nested
    models) and the bundled Keras projects declare at most what they hold."""
    paths = [path for path, _, _ in model_files.values()]
    paths += [REPO / "projects" / "mnist" / "autoencoder.h5", REPO / "projects" / "basicmotions" / "autoencoder.keras"]
    checked = 0
    for path in paths:
        config = read_config(path)
        declared = sum(n for _, _, n in declared_weights(config)) if config else 0
        held = held_weights(path)
        assert held is not None and declared <= held, (path, declared, held)
        checked += bool(declared)
    assert checked >= len(paths) // 2  # most files declare something to check


def test_a_keras_zip_bomb_is_refused_from_its_records_before_unpacking(small, tmp_path, monkeypatch):
    """A .keras whose members unpack to more than the limit allows (zeros compress 1000 to 1), or whose config is
    huge, is refused from the archive's records; the archive is never unpacked. (The allowances are lowered here,
    the module's own constants, so that the files stay small.)"""
    monkeypatch.setattr(archives, "ARCHIVE_SLACK", 2**20)
    monkeypatch.setattr(archives, "MAX_CONFIG_BYTES", 2**20)
    bomb = tmp_path / "bomb.keras"
    with zipfile.ZipFile(small / "small.keras") as zin, zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as zout:
        for item in zin.infolist():
            zout.writestr(item.filename, zin.read(item.filename))
        zout.writestr("assets/padding.bin", bytes(4 * 2**20))  # 4 MiB of zeros, a few KiB compressed
    assert bomb.stat().st_size < 2**18
    monkeypatch.setenv("LATENT_INSPECTOR_MAX_PARAMS", "1000")  # 4,000 bytes of weights + 1 MiB allowed
    with pytest.raises(ModelError, match=r"bomb.keras: the archive unpacks to 4,\d{3},\d{3} bytes .* refused before "
                                         "unpacking"):
        load_model(bomb)
    monkeypatch.delenv("LATENT_INSPECTOR_MAX_PARAMS")
    assert load_model(bomb) is not None  # within the default limit, the same archive loads

    big_config = tmp_path / "config.keras"
    with zipfile.ZipFile(small / "small.keras") as zin, zipfile.ZipFile(big_config, "w", zipfile.ZIP_DEFLATED) as zout:
        for item in zin.infolist():
            data = zin.read(item.filename)
            if item.filename == "config.json":
                data = data[:-1] + b', "pad": "' + b" " * (2 * 2**20) + b'"}'
            zout.writestr(item.filename, data)
    with pytest.raises(ModelError, match="config.json unpacks to .* more than a model's description takes"):
        load_model(big_config)


def test_an_archive_of_too_many_files_is_refused_before_its_list_is_read(small, tmp_path, monkeypatch):
    """Listing a zip builds an object per file: an upload of a million empty members would take gigabytes before any
    size check, so the count is read from the archive's end record first. (The limit is lowered here, the module's
    own constant, so that the file stays small.)"""
    monkeypatch.setattr(archives, "MAX_MEMBERS", 500)
    crowd = tmp_path / "crowd.keras"
    with zipfile.ZipFile(small / "small.keras") as zin, zipfile.ZipFile(crowd, "w") as zout:
        for item in zin.infolist():
            zout.writestr(item.filename, zin.read(item.filename))
        for i in range(600):
            zout.writestr(f"assets/{i}", b"")
    assert archives.declared_members(crowd) == 600 + len(zipfile.ZipFile(small / "small.keras").infolist())
    with pytest.raises(ModelError, match=r"crowd.keras: the archive holds 60\d files, more than a model file holds "
                                         r"\(500 at most\): refused before reading its list of files"):
        load_model(crowd)
    monkeypatch.setattr(archives, "MAX_MEMBERS", 1000)
    assert load_model(crowd) is not None  # below the limit, the same archive loads


def test_the_member_count_of_a_zip64_archive_is_read_from_its_zip64_record(tmp_path):
    """Past 65,535 files the end record says 0xFFFF and the zip64 record holds the count."""
    many = tmp_path / "many.zip"
    with zipfile.ZipFile(many, "w", allowZip64=True) as z:
        for i in range(70_000):
            z.writestr(zipfile.ZipInfo(f"{i}"), b"")
    assert archives.declared_members(many) == 70_000
    plain = tmp_path / "plain.bin"
    plain.write_bytes(b"not a zip" * 100)
    assert archives.declared_members(plain) is None  # no end record: zipfile's own error names the file


# -- PyTorch and ONNX: the same bounds, from what each format declares ---------------------------------------------
#
# Each hostile file is loaded in a child process whose address space is limited to 4 GB: a load that allocated what
# the file declares (40 GB) would end there in a MemoryError or a framework's own error, with a traceback, instead of
# the one-line ModelError asserted here.

_LIMITED = """
import resource, sys
resource.setrlimit(resource.RLIMIT_AS, (4 * 2**30, 4 * 2**30))
from engine.errors import InspectorError
from engine.model import load_model
for path in sys.argv[1:]:
    try:
        load_model(path)
        print(path, "loaded", "", sep="\\t")
    except InspectorError as exc:
        print(path, type(exc).__name__, str(exc), sep="\\t")
# the peak of this process's own memory (VmHWM: its address space's high-water mark, new at exec); getrusage's
# ru_maxrss would carry over the parent's (Linux keeps it across exec: a pytest worker's 3 GB, seen in CI)
hwm = next(line for line in open("/proc/self/status") if line.startswith("VmHWM:"))
print("peak", int(hwm.split()[1]) * 1024, sep="\\t")
"""


def _load_limited(paths: list[Path], **env: str) -> dict[str, tuple[str, str]]:
    """``{file name: (outcome, message)}`` of loading each file in a child process under a 4 GB address-space limit;
    the child's peak memory stays under 2 GB (its imports take about 0.5)."""
    import os
    import subprocess
    import sys

    run = subprocess.run([sys.executable, "-c", _LIMITED, *map(str, paths)], capture_output=True, text=True,
                         timeout=300, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO), **env})
    assert run.returncode == 0, run.stderr[-3000:]
    rows = [line.split("\t") for line in run.stdout.splitlines() if "\t" in line]
    peak = int(dict(r for r in rows if len(r) == 2)["peak"])
    assert peak < 2 * 2**30, peak
    return {Path(r[0]).name: (r[1], r[2]) for r in rows if len(r) == 3}


def _rewrite_zip(src: Path, dst: Path, edit, extra: dict | None = None, compress=zipfile.ZIP_STORED) -> Path:
    """A copy of zip archive ``src`` with each member's bytes passed through ``edit(name, data)``, and ``extra``
    members added."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", compress) as zout:
        for item in zin.infolist():
            zout.writestr(item.filename, edit(item.filename, zin.read(item.filename)))
        for name, data in (extra or {}).items():
            zout.writestr(name, data)
    return dst


@pytest.fixture(scope="module")
def torch_files(tmp_path_factory):
    """A small exported program (``small.pt2``, 212 weights) and its state dict (``small.pt``)."""
    torch = pytest.importorskip("torch")
    root = tmp_path_factory.mktemp("torch_size")
    module = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 4)).eval()
    torch.export.save(torch.export.export(module, (torch.zeros(2, 8),)), root / "small.pt2")
    torch.save(module.state_dict(), root / "small.pt")
    return root


def _huge_pt2(src: Path, dst: Path) -> Path:
    """``src`` whose weights config and graph say that weight ``2.weight`` is 100,000 x 100,000 (40 GB of float32),
    the record holding its 256 bytes unchanged."""
    def edit(name, data):
        if name.endswith(("model_weights_config.json", "models/model.json")):
            text = json.loads(data)
            metas = ([text["config"]["2.weight"]["tensor_meta"]] if "config" in text
                     else [text["graph_module"]["graph"]["tensor_values"]["p_2_weight"]])
            for meta in metas:
                meta["sizes"] = [{"as_int": 100_000}, {"as_int": 100_000}]
                meta["strides"] = [{"as_int": 100_000}, {"as_int": 1}]
            return json.dumps(text).encode()
        return data

    return _rewrite_zip(src, dst, edit)


def _huge_state_dict(src: Path, dst: Path) -> Path:
    """State dict ``src`` whose pickle declares the storage of ``2.weight`` as 10,000,000,000 floats (40 GB), its
    record holding its 256 bytes unchanged."""
    import io
    import pickle

    torch = pytest.importorskip("torch")
    state, keys = torch.load(src, weights_only=True), {}

    class Declaring(pickle.Pickler):  # torch.save's persistent ids, one of them lying
        def persistent_id(self, obj):
            if not isinstance(obj, torch.storage.TypedStorage):
                return None
            key = keys.setdefault(id(obj), str(len(keys)))
            return "storage", torch.FloatStorage, key, "cpu", 10**10 if key == "2" else obj._size()

    out = io.BytesIO()
    Declaring(out, protocol=2).dump(state)
    return _rewrite_zip(src, dst, lambda name, data: out.getvalue() if name.endswith("data.pkl") else data)


def test_a_pytorch_file_declaring_more_weights_than_it_holds_or_the_limit_is_refused_before_reading(
        torch_files, tmp_path, monkeypatch):
    hostile = _huge_pt2(torch_files / "small.pt2", tmp_path / "huge.pt2")
    state = _huge_state_dict(torch_files / "small.pt", tmp_path / "huge.pt")
    assert hostile.stat().st_size < 2**16 and state.stat().st_size < 2**16
    found = _load_limited([hostile, state, torch_files / "small.pt2"])
    outcome, message = found["huge.pt2"]
    assert outcome == "ModelError" and message.startswith(f"{hostile}: weight '2.weight' of 100,000 x 100,000 "
                                                          "declares 40,000,000,000 bytes, and the archive holds 256")
    assert "refused before reading its weights" in message and found["small.pt2"] == ("loaded", "")
    outcome, message = found["huge.pt"]  # read from the pickle's opcodes, nothing unpickled
    assert outcome == "ModelError" and message.startswith(
        f"{state}: storage '2' declares 10,000,000,000 values of FloatStorage (40,000,000,000 bytes), and the archive "
        "holds 256 for it (small/data/2): the file does not match its own pickle; refused before reading its weights")
    monkeypatch.setenv("LATENT_INSPECTOR_MAX_PARAMS", "200")  # the program and the state dict declare 212
    with pytest.raises(ModelError, match=r"small.pt2: declares 212 weights \(weight '0.weight' of 16 x 8\), more "
                                         r"than this server loads \(200; LATENT_INSPECTOR_MAX_PARAMS sets it\)"):
        load_model(torch_files / "small.pt2")
    with pytest.raises(ModelError, match=r"small.pt: declares 212 weights \(storage '0', 128 values of FloatStorage\)"
                                         r", more than this server loads \(200"):
        load_model(torch_files / "small.pt")


def test_pytorch_zip_bombs_are_refused_from_their_records(torch_files, tmp_path, monkeypatch):
    """A .pt2 or a state dict whose members unpack to more than the limit allows (PyTorch's reader unpacks a whole
    record into memory), or whose description (graph, pickle) is huge, is refused before unpacking."""
    monkeypatch.setattr(archives, "ARCHIVE_SLACK", 2**20)
    monkeypatch.setattr(archives, "MAX_CONFIG_BYTES", 2**20)
    monkeypatch.setenv("LATENT_INSPECTOR_MAX_PARAMS", "1000")  # 4,000 bytes of weights + 1 MiB allowed
    bombs = {"bomb.pt2": _rewrite_zip(torch_files / "small.pt2", tmp_path / "bomb.pt2", lambda n, d: d,
                                      {"small/data/weights/padding": bytes(4 * 2**20)}, zipfile.ZIP_DEFLATED),
             "bomb.pt": _rewrite_zip(torch_files / "small.pt", tmp_path / "bomb.pt", lambda n, d: d,
                                     {"small/data/99": bytes(4 * 2**20)}, zipfile.ZIP_DEFLATED)}
    for name, bomb in bombs.items():
        assert bomb.stat().st_size < 2**18
        with pytest.raises(ModelError, match=rf"{name}: the archive unpacks to 4,\d{{3}},\d{{3}} bytes .* refused "
                                             "before unpacking"):
            load_model(bomb)
    big_graph = _rewrite_zip(torch_files / "small.pt2", tmp_path / "graph.pt2",
                             lambda n, d: d[:-1] + b', "pad": "' + b" " * (2 * 2**20) + b'"}'
                             if n.endswith("models/model.json") else d, compress=zipfile.ZIP_DEFLATED)
    with pytest.raises(ModelError, match=r"graph.pt2: small/models/model.json unpacks to .* more than a model's "
                                         "description takes"):
        load_model(big_graph)


def test_a_legacy_or_truncated_state_dict_is_refused_in_one_line(torch_files, tmp_path):
    """The legacy (pre-1.6) format's loader allocates each storage at the size its pickle declares before reading
    it, so it is refused; so is a zip archive cut short, and one whose pickle is cut short or garbled (read as
    opcodes, before PyTorch reads it)."""
    torch = pytest.importorskip("torch")
    legacy = tmp_path / "legacy.pt"
    torch.save(torch.load(torch_files / "small.pt"), legacy, _use_new_zipfile_serialization=False)
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes((torch_files / "small.pt").read_bytes()[:700])
    for path in (legacy, truncated):
        with pytest.raises(ModelError, match=rf"{path.name}: not a readable PyTorch file: not a zip archive") as info:
            load_model(path)
        assert "\n" not in str(info.value)
    pickled = zipfile.ZipFile(torch_files / "small.pt").read("small/data.pkl")
    for name, bad in (("cut.pt", pickled[:len(pickled) // 2]), ("junk.pt", b"\x80\x02" + pickled[40:])):
        path = _rewrite_zip(torch_files / "small.pt", tmp_path / name,
                            lambda member, data, bad=bad: bad if member.endswith("data.pkl") else data)
        with pytest.raises(ModelError, match=rf"{name}: not a readable PyTorch file \(the pickle in it is corrupt or "
                                             "truncated") as info:
            load_model(path)
        assert "\n" not in str(info.value)


@pytest.fixture
def onnx_files(tmp_path):
    """In ``tmp_path``: ``mlp.onnx`` (65 weights), and in ``inner/`` the same with its weights in ``weights.bin``
    (``external.onnx``); ``tmp_path / "outside.bin"`` is a copy of those weights outside ``inner/``."""
    pytest.importorskip("onnx")
    import onnx_models

    inner = tmp_path / "inner"
    inner.mkdir()
    onnx_models.mlp(tmp_path)
    onnx_models.external_data(inner)
    shutil.copy(inner / "weights.bin", tmp_path / "outside.bin")
    return tmp_path


def _edited_onnx(src: Path, dst: Path, edit) -> Path:
    """``src``'s graph (its external data left unread) with ``edit(initializer)`` applied to each initializer."""
    import onnx

    proto = onnx.load(src, load_external_data=False)
    for tensor in proto.graph.initializer:
        edit(tensor)
    onnx.save(proto, dst)
    return dst


def _declare(name: str, *dims: int):
    def edit(tensor):
        if tensor.name == name:
            del tensor.dims[:]
            tensor.dims.extend(dims)
    return edit


def _locate(location: str):
    def edit(tensor):
        for entry in tensor.external_data:
            if entry.key == "location":
                entry.value = location
    return edit


def test_an_onnx_initializer_declaring_more_than_the_file_holds_or_the_limit_is_refused_before_reading(
        onnx_files, monkeypatch):
    inner = onnx_files / "inner"
    huge = _edited_onnx(onnx_files / "mlp.onnx", onnx_files / "huge.onnx", _declare("enc.w", 100_000, 100_000))
    huge_external = _edited_onnx(inner / "external.onnx", inner / "huge_external.onnx",
                                 _declare("enc.w", 100_000, 100_000))
    found = _load_limited([huge, huge_external, onnx_files / "mlp.onnx"])
    for path, holds in ((huge, "the file holds 120 bytes"), (huge_external, "the file holds 120 bytes")):
        outcome, message = found[path.name]
        assert outcome == "ModelError" and message.startswith(
            f"{path}: initializer 'enc.w' declares 100,000 x 100,000 FLOAT values (40,000,000,000 bytes), and "
            f"{holds} for it: the file does not match its own graph; refused before reading its weights"), message
    assert found["mlp.onnx"] == ("loaded", "")
    monkeypatch.setenv("LATENT_INSPECTOR_MAX_PARAMS", "60")  # the graph declares 65
    with pytest.raises(ModelError, match=r"mlp.onnx: declares 65 weights \(initializer 'enc.w', 6 x 5\), more than "
                                         r"this server loads \(60; LATENT_INSPECTOR_MAX_PARAMS sets it\)"):
        load_model(onnx_files / "mlp.onnx")
    monkeypatch.setattr(archives, "ARCHIVE_SLACK", 100)  # the file itself (about 600 bytes) over 60 * 4 + 100
    with pytest.raises(ModelError, match=r"mlp.onnx: the file takes \d+ bytes, more than a model of the 60 weights "
                                         r"this server loads takes \(340; .*refused before reading it"):
        load_model(onnx_files / "mlp.onnx")


def test_onnx_external_data_outside_the_models_folder_is_refused(onnx_files):
    """An external-data location that is absolute, goes through '..', or is a symbolic link out of the model's
    folder is refused before any file is opened; so is one that says it holds more than its file does."""
    import os

    inner = onnx_files / "inner"
    os.symlink(onnx_files / "outside.bin", inner / "link.bin")
    cases = {
        "parent.onnx": ("../outside.bin", "keeps its values in '../outside.bin', which is not a file name inside "
                                          "the model's folder"),
        "absolute.onnx": (str(onnx_files / "outside.bin"), "which is not a file name inside the model's folder "
                                                           "(an absolute path or one through '..')"),
        "link.onnx": ("link.bin", f"keeps its values in 'link.bin', a link to {onnx_files / 'outside.bin'}, outside "
                                  f"the model's folder {inner}: refused"),
        "missing.onnx": ("gone.bin", "cannot read the model's external data: initializer 'enc.w' keeps its values "
                                     "in 'gone.bin', which is missing"),
    }
    for name, (location, fragment) in cases.items():
        path = _edited_onnx(inner / "external.onnx", inner / name, _locate(location))
        with pytest.raises(ModelError) as info:
            load_model(path)
        assert str(info.value).startswith(f"{path}: ") and fragment in str(info.value), str(info.value)
        assert "\n" not in str(info.value)

    def longer(tensor):
        for entry in tensor.external_data:
            if entry.key == "length":
                entry.value = str(10**12)

    path = _edited_onnx(inner / "external.onnx", inner / "long.onnx", longer)
    with pytest.raises(ModelError, match=r"long.onnx: initializer 'enc.w' reads 1,000,000,000,000 bytes at offset 0 "
                                         r"of weights.bin, which holds \d+: the external data is truncated"):
        load_model(path)
    assert load_model(inner / "external.onnx") is not None


def test_truncated_and_corrupted_onnx_files_give_one_typed_line(onnx_files):
    """The mlp cut at 40 places and with 40 random bytes flipped: each loads, or fails with a ModelError naming the
    file on one line; nothing else escapes."""
    good = (onnx_files / "mlp.onnx").read_bytes()
    rng = np.random.default_rng(0)
    variants = {f"cut{k}.onnx": good[:k] for k in np.linspace(1, len(good) - 1, 40).astype(int)}
    for k in range(40):
        flipped = bytearray(good)
        for at in rng.integers(0, len(good), size=3):
            flipped[at] = int(rng.integers(0, 256))
        variants[f"flip{k}.onnx"] = bytes(flipped)
    refused = 0
    for name, data in variants.items():
        path = onnx_files / name
        path.write_bytes(data)
        try:
            load_model(path)
        except ModelError as exc:
            assert str(exc).startswith(f"{path}: ") and "\n" not in str(exc), str(exc)
            refused += 1
    assert refused >= 40  # every cut, at least
