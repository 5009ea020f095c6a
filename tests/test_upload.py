"""New projects from uploaded files (engine.data.upload), hostile or not: every refusal is an UploadError naming
the file or value and what was expected, with the field at fault, and leaves nothing behind; a good upload loads as
a project and lists its layers. Real files throughout: a real Keras model, real arrays, real zip archives.
"""

from __future__ import annotations

import io
import os
import threading
import zipfile

import numpy as np
import pytest
from builders import blobs, build_models

from engine.data.project import list_projects, load_project
from engine.data.upload import UploadLimits, check_file_name, check_name, create_project, parse_size
from engine.errors import UploadError, UsageError
from engine.model import list_layers

SMALL = UploadLimits(model=2 * 10**6, data=10**6, total=3 * 10**6, unpacked=50 * 10**6)


def _npy(array) -> bytes:
    out = io.BytesIO()
    np.save(out, array)
    return out.getvalue()


@pytest.fixture(scope="module")
def sent(tmp_path_factory):
    """What a user sends: a small Keras autoencoder of 12 inputs, 120 samples of 12 features and their labels."""
    model, _ = build_models()["sequential"]
    path = tmp_path_factory.mktemp("sent") / "autoencoder.keras"
    model.save(path)
    x, y = blobs(3, 40, 12, spread=0.5)
    return {"model": ("autoencoder.keras", path.read_bytes()), "inputs": ("clusters.npy", _npy(x)),
            "labels": ("classes.npy", _npy(y))}


@pytest.fixture
def root(tmp_path):
    """A projects root holding one project, inside a folder whose every file the test can list."""
    root = tmp_path / "projects"
    (root / "existing").mkdir(parents=True)
    (root / "existing" / "x.npy").write_bytes(_npy(np.zeros((2, 2))))
    return root


def _tree(path) -> list[str]:
    return sorted(str(p.relative_to(path)) for p in path.rglob("*"))


def _refused(root, name, files, field, match, limits=SMALL):
    """Assert the upload is refused for ``field`` with a message matching ``match``, and that nothing changed."""
    before = _tree(root.parent)
    with pytest.raises(UploadError, match=match) as info:
        create_project(root, name, files, limits=limits)
    assert info.value.field == field
    assert _tree(root.parent) == before
    return info.value


# -- a good upload -----------------------------------------------------------------------------------------------------


def test_an_upload_becomes_a_project_that_loads_and_lists_its_layers(root, sent):
    before = _tree(root.parent)
    stages = []
    made = create_project(root, "my-clusters_1", sent, limits=SMALL, progress=lambda *a: stages.append(a[0]))
    assert made.project.name == "my-clusters_1" and made.project.path == (root / "my-clusters_1").resolve()
    # the user's names never reach the file system: one fixed name per role
    assert sorted(os.listdir(root / "my-clusters_1")) == ["model.keras", "project.toml", "x.npy", "y.npy"]
    assert _tree(root.parent) == sorted(before + ["projects/my-clusters_1"] + [
        f"projects/my-clusters_1/{n}" for n in ("model.keras", "project.toml", "x.npy", "y.npy")])
    project = load_project("my-clusters_1", root)
    assert project.trust_model is False
    assert "autoencoder.keras" in project.description and "classes.npy" in project.description
    assert project.inputs().shape == (120, 12) and project.labels().tolist() == [0] * 40 + [1] * 40 + [2] * 40
    assert "bottleneck" in [info.name for info in list_layers(project.model()) if info.valid_cut]
    assert "my-clusters_1" in list_projects(root)
    assert stages[0] == "writing the files" and stages[-1] == "done"


def test_file_contents_may_be_file_objects_and_data_may_be_csv(root, sent):
    x = np.random.default_rng(0).normal(size=(30, 12))
    csv = "\n".join(",".join(f"{v:.5f}" for v in row) for row in x).encode()
    files = {"model": ("AE.KERAS", io.BytesIO(sent["model"][1])), "inputs": ("C:\\data\\x.csv", io.BytesIO(csv))}
    made = create_project(root, "from-csv", files, limits=SMALL)
    assert sorted(p.name for p in made.files.values()) == ["model.keras", "x.csv"]
    np.testing.assert_allclose(made.project.inputs(), x, atol=1e-5)
    assert made.project.labels() is None


# -- names -------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name, why", [
    ("a/b", "path separator"), ("a\\b", "path separator"), ("..", r"holds '\.\.'"), ("../x", "path separator"),
    (".hidden", "starts with a dot"), ("", "needs a name"), ("x" * 65, "65 characters, more than 64"),
    ("with space", "holds ' '"), ("café", "holds 'é'"), ("-x", "starts with '-'"), ("_x", "starts with '_'"),
    (None, "needs a name"), ("a\0b", r"holds '\\x00'"),
])
def test_hostile_project_names_are_refused_saying_why(root, sent, name, why):
    error = _refused(root, name, sent, "name", why)
    if name:
        assert "1 to 64 letters, digits" in str(error)


def test_good_names_pass_and_a_taken_name_is_refused_whatever_holds_it(root, sent):
    assert check_name("a") == "a" and check_name("A-1_b" + "c" * 59) == "A-1_b" + "c" * 59
    (root / "a-file").write_text("not a project")
    (root / "a-link").symlink_to(root.parent / "nowhere")  # a dangling link: never followed, never replaced
    for taken in ("existing", "a-file", "a-link"):
        with pytest.raises(UploadError, match=f"a project named '{taken}' already exists") as info:
            check_name(taken, root)
        assert info.value.field == "name"
        _refused(root, taken, sent, "name", f"'{taken}' already exists; choose another name")
    assert (root / "a-link").is_symlink() and not (root.parent / "nowhere").exists()


def test_two_uploads_of_one_name_at_once_make_one_project_and_one_clear_error(root, sent):
    results, errors = [], []
    start = threading.Barrier(2)

    def upload():
        start.wait()
        try:
            results.append(create_project(root, "twice", sent, limits=SMALL))
        except UploadError as exc:
            errors.append(exc)

    threads = [threading.Thread(target=upload) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 1 and len(errors) == 1
    assert errors[0].field == "name" and "'twice' already exists" in str(errors[0])
    assert sorted(os.listdir(root)) == ["existing", "twice"]
    assert load_project("twice", root).inputs().shape == (120, 12)


# -- the files: kinds and sizes ----------------------------------------------------------------------------------------


def test_only_the_suffix_of_a_sent_name_is_kept_and_it_must_be_a_known_kind():
    assert check_file_name("model", "../../evil/AE.KERAS") == ".keras"
    assert check_file_name("inputs", "/etc/passwd.npy") == ".npy"
    assert check_file_name("labels", "..\\..\\y.CSV") == ".csv"
    for role, filename, match in [
        ("model", "model.keras/../x", "not a model file"), ("model", "x.npy", "looks like a data file"),
        ("inputs", "ae.keras", "looks like a model file"), ("inputs", "data.mat", "MATLAB files are not taken"),
        ("inputs", "x.npy.exe", "not a data file"), ("inputs", "noext", "not a data file"),
        ("labels", ".npy", "not a labels file"), ("model", "", "has no name"), ("model", None, "has no name"),
    ]:
        with pytest.raises(UploadError, match=match) as info:
            check_file_name(role, filename)
        assert info.value.field == role
    with pytest.raises(UploadError, match="unknown file role 'hooks'"):
        check_file_name("hooks", "hooks.py")


def test_missing_unknown_empty_and_oversized_files_are_refused(root, sent):
    _refused(root, "p", {"model": sent["model"]}, "inputs", "no data file: a new project needs a model and its input")
    _refused(root, "p", {"inputs": sent["inputs"]}, "model", "no model file")
    _refused(root, "p", {**sent, "hooks": ("hooks.py", b"import os")}, None, "unknown file role 'hooks'")
    _refused(root, "p", {**sent, "labels": ("y.npy", b"")}, "labels", "'y.npy' is empty; expected a labels file")
    big = ("big.npy", _npy(np.zeros(300_000, np.float32)))  # 1.2 MB, over the 1 MB data limit
    _refused(root, "p", {**sent, "inputs": big}, "inputs", r"'big.npy' holds 1.2 MB, more than the 1 MB a data file")
    tight = UploadLimits(model=2 * 10**6, data=10**6, total=30_000)
    _refused(root, "p", sent, None, r"the files add up to .* more than the 30 KB an upload may hold", tight)


class _Stream(io.RawIOBase):
    """A file object of unknown size (not seekable), as a network stream: counted while it is copied."""

    def __init__(self, data: bytes):
        self._data = io.BytesIO(data)

    def readable(self):
        return True

    def readinto(self, buffer):
        chunk = self._data.read(len(buffer))
        buffer[:len(chunk)] = chunk
        return len(chunk)


def test_a_stream_over_the_limit_is_stopped_while_copied_and_nothing_is_left(root, sent):
    big = _npy(np.zeros(300_000, np.float32))
    _refused(root, "streamed", {**sent, "inputs": ("big.npy", _Stream(big))}, "inputs",
             r"'big.npy' holds .* more than the 1 MB a data file may hold")


# -- archives and arrays that would unpack to too much -----------------------------------------------------------------


def _zip(members, compression=zipfile.ZIP_DEFLATED) -> bytes:
    """A zip archive of ``members``: name -> bytes, or name -> (block, count) written block by block."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression) as z:
        for name, content in members.items():
            if isinstance(content, tuple):
                block, count = content
                with z.open(name, "w", force_zip64=True) as member:
                    for _ in range(count):
                        member.write(block)
            elif isinstance(content, zipfile.ZipInfo):
                z.writestr(content, b"target")
            else:
                z.writestr(name, content)
    return out.getvalue()


def test_a_keras_zip_bomb_is_refused_before_anything_reads_it(root, sent):
    bomb = _zip({"config.json": b"{}", "model.weights.h5": (bytes(2**20), 200)})  # 200 MiB of zeros, streamed
    assert len(bomb) < 300_000
    error = _refused(root, "bomb", {**sent, "model": ("ae.keras", bomb)}, "model",
                     r"'ae.keras' is refused: the archive's member 'model.weights.h5' unpacks .* into 210 MB, "
                     r".* times; more than 100 times is taken for a zip bomb", limits=UploadLimits())
    assert "the archive" in str(error)
    # members each compressed less than 100 times that add up to more than the limit
    stored = _zip({f"part{i}": bytes(range(256)) * 4_000 for i in range(6)}, zipfile.ZIP_STORED)
    _refused(root, "big-zip", {**sent, "inputs": ("x.npz", stored)}, "inputs",
             r"would unpack to 6.14 MB, more than the 5 MB an uploaded file may unpack to",
             UploadLimits(data=10**7, unpacked=5 * 10**6))


def test_archives_with_escaping_linked_duplicated_or_too_many_members_are_refused(root, sent):
    link = zipfile.ZipInfo("weights.h5")
    link.external_attr = 0o120777 << 16  # a symbolic link
    cases = [
        ({"../evil.txt": b"x"}, "holds a member named '../evil.txt', outside the archive's folder"),
        ({"/etc/cron.d/x": b"x"}, "holds a member named '/etc/cron.d/x'"),
        ({"C:/Windows/x": b"x"}, "holds a member named 'C:/Windows/x'"),
        ({"a/..\\..\\b": b"x"}, "outside the archive's folder"),
        ({"weights.h5": link}, "holds a symbolic link, 'weights.h5'"),
    ]
    for members, match in cases:
        _refused(root, "evil", {**sent, "model": ("ae.keras", _zip(members))}, "model", match)
    data_link = zipfile.ZipInfo("x.npy")
    data_link.external_attr = 0o120777 << 16  # a link among the data: refused like one in a model archive
    _refused(root, "evil", {**sent, "inputs": ("x.npz", _zip({"x.npy": data_link}))}, "inputs",
             "holds a symbolic link, 'x.npy'")
    twice = io.BytesIO()
    with zipfile.ZipFile(twice, "w") as z, pytest.warns(UserWarning, match="Duplicate name"):
        z.writestr("config.json", b"{}")
        z.writestr("config.json", b"{}")
    _refused(root, "evil", {**sent, "model": ("ae.keras", twice.getvalue())}, "model",
             "holds two members named 'config.json'")
    many = _zip({f"m{i}": b"" for i in range(20)})
    _refused(root, "evil", {**sent, "inputs": ("x.npz", many)}, "inputs", "holds 20 members, more than 5",
             UploadLimits(members=5))


def test_arrays_declaring_more_than_the_limit_are_refused_by_their_headers(root, sent):
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False, "shape": (10**9, 12)})
    huge = header.getvalue() + bytes(64)
    _refused(root, "huge", {**sent, "inputs": ("x.npy", huge)}, "inputs",
             r"'x.npy' declares arrays of 48 GB, more than the 50 MB an uploaded file may unpack to")
    _refused(root, "huge", {**sent, "inputs": ("x.npz", _zip({"x.npy": huge}))}, "inputs",
             r"'x.npz' declares arrays of 48 GB")
    text = b"1,2,3\n" * 100_000  # 600 KB of text: about 6 MB once parsed
    _refused(root, "text", {**sent, "inputs": ("x.csv", text)}, "inputs",
             r"'x.csv' is 600 KB of text, which is read whole into memory .* more than the 5 MB .* send the data as "
             r"\.npy", UploadLimits(unpacked=5 * 10**6))


def test_hdf5_files_that_read_other_files_of_the_server_are_refused(root, sent, tmp_path):
    import h5py

    secret = root.parent / "secret.bin"
    secret.write_bytes(bytes(range(48)))
    stored_elsewhere, linked = tmp_path / "external.h5", tmp_path / "linked.h5"
    with h5py.File(stored_elsewhere, "w") as f:
        f.create_dataset("x", shape=(4, 12), dtype="<f4", external=[(str(secret), 0, 4 * 12 * 4)])
    with h5py.File(linked, "w") as f:
        f.create_dataset("y", data=np.zeros((4, 12), np.float32))
        f["x"] = h5py.ExternalLink(str(secret), "/x")
    _refused(root, "elsewhere", {**sent, "inputs": ("x.h5", stored_elsewhere.read_bytes())}, "inputs",
             "'x.h5' is refused: dataset 'x' is stored in other files; an uploaded HDF5 file must hold its data")
    _refused(root, "elsewhere", {**sent, "inputs": ("x.h5", linked.read_bytes())}, "inputs",
             r"'x.h5' is refused: 'x' links to '.*secret.bin'")
    keras = _zip({"config.json": b"{}", "model.weights.h5": stored_elsewhere.read_bytes()})
    _refused(root, "elsewhere", {**sent, "model": ("ae.keras", keras)}, "model",
             "'ae.keras''s member 'model.weights.h5' is refused: dataset 'x' is stored in other files")


# -- files that do not make a working project --------------------------------------------------------------------------


def test_data_that_does_not_fit_the_model_is_refused_naming_the_users_file(root, sent):
    wrong = ("my data.npy", _npy(np.zeros((50, 5), np.float32)))
    error = _refused(root, "mismatch", {**sent, "inputs": wrong, "labels": None}, "inputs",
                     r"'my data.npy': samples of shape \(5,\) \(5 values\) do not fit the model's input \(12,\)")
    assert "was not created" in str(error) and ".tmp-upload" not in str(error) and str(root) not in str(error)
    few = ("few.npy", _npy(np.zeros(7, np.int64)))
    _refused(root, "mismatch", {**sent, "labels": few}, "labels", r"'few.npy'.*7 labels for 120 input samples")
    _refused(root, "mismatch", {**sent, "model": ("ae.h5", b"not an HDF5 file at all")}, "model", r"'ae.h5'")


def test_an_npz_of_inputs_beside_a_labels_file_and_a_keras_lambda_never_trusted(root, sent, tmp_path):
    import keras

    x, y = blobs(2, 20, 12, spread=0.5, seed=1)
    npz = io.BytesIO()
    np.savez(npz, x_train=x, y_train=y)
    made = create_project(root, "npz", {**sent, "inputs": ("train.npz", npz.getvalue()),
                                        "labels": ("y.npy", _npy(y))}, limits=SMALL)
    assert made.project.inputs_key == "x_train" and made.project.inputs().shape == (40, 12)
    lam = keras.Sequential([keras.Input((12,)), keras.layers.Lambda(lambda t: t * 2.0, name="double"),
                            keras.layers.Dense(3, name="code"), keras.layers.Dense(12, name="out")])
    lam.save(tmp_path / "lambda.keras")
    _refused(root, "lambda", {**sent, "model": ("lambda.keras", (tmp_path / "lambda.keras").read_bytes())}, "model",
             r"'lambda.keras'.*'double'.*a project made in the browser is never trusted")


def test_a_pickled_torch_module_is_refused_with_the_engines_message_never_trusted(root, sent):
    torch = pytest.importorskip("torch")
    from torch_models import build

    module, _ = build("sequential")
    pickled = io.BytesIO()
    torch.save(module, pickled)
    _refused(root, "pickled", {**sent, "model": ("net.pt", pickled.getvalue())}, "model",
             r"'net.pt': holds a whole pickled object \(torch.save\(model\)\), and unpickling it runs arbitrary code"
             r".*a project made in the browser is never trusted")
    weights = io.BytesIO()
    torch.save(module.state_dict(), weights)
    _refused(root, "weights", {**sent, "model": ("net.pth", weights.getvalue())}, "model",
             r"build_model.*a project made in the browser has no hooks.py: send a torch.export program \(.pt2\)")


def test_an_onnx_model_whose_weights_point_outside_its_folder_is_refused(root, sent, tmp_path):
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from onnx import TensorProto, helper, numpy_helper

    (root.parent / "secret.bin").write_bytes(bytes(48))
    weight = numpy_helper.from_array(np.zeros(12, np.float32), "w")
    weight.ClearField("raw_data")
    weight.data_location = TensorProto.EXTERNAL
    weight.external_data.add(key="location", value="../../secret.bin")
    graph = helper.make_graph([helper.make_node("Add", ["x", "w"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 12])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 12])], [weight])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    _refused(root, "outside", {**sent, "model": ("net.onnx", model.SerializeToString())}, "model",
             r"'net.onnx': initializer 'w' keeps its values in '\.\./\.\./secret\.bin', which is not a file name "
             r"inside the model's folder")
    assert onnx is not None


# -- limits from the environment ---------------------------------------------------------------------------------------


def test_a_model_that_needs_more_memory_than_an_upload_may_use_is_refused_in_its_own_process(root, sent,
                                                                                            monkeypatch):
    """The model is first loaded, and a batch run, in a separate process whose address space is limited: under a
    limit TensorFlow's import alone exceeds, the upload is refused naming the limit, this process never loaded the
    model, and nothing is left."""
    from engine.model import LOADED_MODELS

    monkeypatch.setenv("LATENT_INSPECTOR_UPLOAD_MEMORY_GB", "0.3")
    before = set(LOADED_MODELS.keys())
    _refused(root, "greedy", sent, "model", r"more than the 0\.3 GiB of memory an upload's check may use "
             r"\(LATENT_INSPECTOR_UPLOAD_MEMORY_GB\).*\(project 'greedy' was not created\)")
    assert set(LOADED_MODELS.keys()) == before


def test_a_model_that_takes_longer_than_an_upload_may_take_to_check_is_refused(root, sent, monkeypatch):
    monkeypatch.setenv("LATENT_INSPECTOR_UPLOAD_CHECK_S", "0.2")
    _refused(root, "slow", sent, "model", r"took longer than 0 s.*LATENT_INSPECTOR_UPLOAD_CHECK_S")


def test_limits_come_from_the_environment_and_a_bad_one_is_a_usage_error():
    limits = UploadLimits.from_environ({"LATENT_INSPECTOR_UPLOAD_MAX_MODEL": "64MB",
                                        "LATENT_INSPECTOR_UPLOAD_MAX_DATA": "1.5GB",
                                        "LATENT_INSPECTOR_UPLOAD_MAX_UNPACKED": "300 KiB"})
    assert (limits.model, limits.data, limits.total, limits.unpacked) == (64 * 10**6, 15 * 10**8, 25 * 10**8,
                                                                          300 * 1024)
    assert parse_size("1048576") == 2**20
    for bad in ("lots", "-5MB", "0", "5 parsecs"):
        with pytest.raises(UsageError, match="LATENT_INSPECTOR_UPLOAD_MAX_DATA="):
            UploadLimits.from_environ({"LATENT_INSPECTOR_UPLOAD_MAX_DATA": bad})
    with pytest.raises(UsageError, match="UploadLimits: ratio = 0"):
        UploadLimits(ratio=0)
