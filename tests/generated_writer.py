"""A child process that saves records into a generated dataset, for the crash and concurrency tests.

Run as ``python generated_writer.py PROJECT_DIR DATASET TAG COUNT [START_AT]``: prints ``ready``, waits until the
wall-clock time ``START_AT`` (if given), then saves records ``(TAG, 0)``, ``(TAG, 1)``... (``COUNT`` of them, or
forever when COUNT is 0), printing ``<id> <tag> <i>`` once each save has returned. A record's content is a pure
function of ``(tag, i)`` (:func:`make_record`), so the parent can check every byte of what it finds.

Imports only NumPy and ``engine.data.generated``: no TensorFlow, so the child starts in a fraction of a second.
"""

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

from engine.data.generated import GeneratedDataset, Record  # noqa: E402

CLASSES = [str(k) for k in range(10)]


def make_record(tag: int, i: int) -> Record:
    """The record a writer with ``tag`` saves as its ``i``-th."""
    rng = np.random.default_rng([tag, i])
    probs = rng.dirichlet(np.ones(len(CLASSES)))
    return Record(
        project="crashproj",
        model_hash="0123456789abcdef",
        layer="bottleneck",
        method="umap",
        params={"tag": tag, "i": i, "n_neighbors": 15},
        inverse="mlp",
        xy=(float(tag) + 0.25, float(i) - 0.5),
        activation=rng.normal(size=(10,)).astype(np.float32),
        output=rng.random((32, 32, 8), dtype=np.float32),
        user_label="not a number" if i % 7 == 3 else CLASSES[i % 10],
        probe_label=CLASSES[int(probs.argmax())],
        probabilities={c: float(p) for c, p in zip(CLASSES, probs)},
        trust={"distance": float(rng.random()), "out_of_bounds": bool(i % 2), "error": float("nan")},
    )


def main(argv):
    project_dir, name, tag, count = argv[1], argv[2], int(argv[3]), int(argv[4])
    start_at = float(argv[5]) if len(argv) > 5 else None
    dataset = GeneratedDataset(project_dir, name)
    print("ready", flush=True)
    if start_at is not None:
        time.sleep(max(0.0, start_at - time.time()))
    i = 0
    while count == 0 or i < count:
        rid = dataset.save(make_record(tag, i))
        print(f"{rid} {tag} {i}", flush=True)
        i += 1


if __name__ == "__main__":
    main(sys.argv)
