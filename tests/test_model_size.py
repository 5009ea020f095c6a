"""A Keras file whose architecture declares more weights than it holds, or than the server's limit, is refused before
Keras builds anything (engine.model.keras_files.check_declared_size): building a Dense of 2,000,000,000 units would
allocate 16 GB first."""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path

import h5py
import pytest

from engine.errors import ModelError
from engine.model import load_model
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
    from engine.model import keras_files

    monkeypatch.setattr(keras_files, "ARCHIVE_SLACK", 2**20)
    monkeypatch.setattr(keras_files, "MAX_CONFIG_BYTES", 2**20)
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
