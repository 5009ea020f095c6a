"""The state of training on a generated dataset and of the model versions it makes.

:class:`FineTuning` follows an :class:`~dashboard.inspector.state.Inspector` and its
:class:`~dashboard.datasets.state.Datasets`: it lists the project's model versions (the original file and the
fine-tuned ones, :func:`engine.model.finetune.model_versions`) as the inspector's ``model_version`` choices,
fine-tunes the model's suffix on the current dataset's records (a new version, saved and then shown), refits the
probe with the records (:func:`engine.explore.probe.finetune_probe`), and, while a fine-tuned version is shown,
decodes each point with the original model too, for a before/after comparison. Every number is the engine's.
"""

from __future__ import annotations

import param

from engine.errors import InspectorError

from ..datasets.state import Datasets
from ..inspector.state import Follower
from ..shared import plot_table

__all__ = ["FineTuning"]


class FineTuning(Follower):
    """Fine-tuning and model versions of one session.

    Parameters
    ----------
    inspector : Inspector
    datasets : Datasets
        Its current dataset is what the model and the probe are trained on.

    Example
    -------
    >>> tuning = FineTuning(inspector=store, datasets=datasets)     # doctest: +SKIP
    >>> tuning.finetune(epochs=5); store.model_version               # doctest: +SKIP
    'models/model-1.keras'
    """

    datasets = param.ClassSelector(class_=Datasets, doc="The session's generated datasets")
    compare = param.Parameter(default=None, doc="The original model's output for the current decode's activation, "
                              "when a fine-tuned version is shown")
    notice = param.String(default="", doc="Outcome of the last fine-tuning")

    def __init__(self, **params):
        super().__init__(**params)
        self.inspector.param.watch(self._project_changed, "project_obj")
        # the comparison after the decoded image, which the user waits for
        self.inspector.param.watch(self._compare, "decode", precedence=50)
        self.datasets.param.watch(self._dataset_changed, "dataset")
        self._project_changed()

    def _dataset_changed(self, *_):
        """Another dataset: what went wrong training on the previous one is no longer said under the buttons."""
        if not self.busy:
            self.error = ""

    def _project_changed(self, *_):
        self.param.update(compare=None, notice="")
        if self.inspector.project_obj is not None:
            self.refresh_versions()

    def refresh_versions(self, select: str | None = None):
        """List the project's model versions as the inspector's choices; show ``select`` (a version's path relative
        to the project folder), else keep the version shown when it is still there, else the original."""
        from engine.model.finetune import model_versions

        inspector = self.inspector
        project = inspector.project_obj
        found = model_versions(project)
        names = {f"original ({found[0].name})": ""}
        names |= {str(v.path.relative_to(project.path)): str(v.path.relative_to(project.path)) for v in found[1:]}
        inspector.param.model_version.objects = names
        if select is not None:
            inspector.model_version = select
        elif inspector.model_version not in names.values():
            inspector.model_version = ""

    @property
    def suffix_trainable(self) -> bool:
        """True when the model's output is drawn as class probabilities, so its suffix can learn the dataset's
        labels (the engine checks the outputs themselves before training)."""
        inspection, project = self.inspector.inspection, self.inspector.project_obj
        return bool(inspection is not None and len(inspection.output_shape) == 1 and inspection.output_shape[0] > 1
                    and getattr(project.output_view, "kind", None) == "probabilities")

    def finetune_blocker(self) -> str:
        """Why the model's suffix cannot be fine-tuned now, in words ('' when it can): shown under the button."""
        if self.inspector.inspection is None:
            return "Fine-tuning waits for the inspection of a layer."
        if not self.datasets.records:
            return "Fine-tuning trains on the dataset's records: label decodes and save them first."
        if not self.suffix_trainable:
            view = self.inspector.project_obj.output_view
            what = f"{view.kind} {'x'.join(map(str, view.shape or ()))}".strip()
            return (f"Fine-tuning the suffix needs a model whose output is a vector of class probabilities (this "
                    f"model's output: {what}). Refit the probe with the records instead.")
        return ""

    def _compare(self, *_):
        """The original model's output at the current decode's activation, while a fine-tuned version is shown."""
        inspector = self.inspector
        decoded, compare = inspector.decode, None
        if decoded is not None and inspector.model_version and inspector.project_obj is not None:
            from engine.model.finetune import decode_with, model_versions

            try:
                original = model_versions(inspector.project_obj)[0]
                compare = decode_with(inspector.project_obj, original, inspector.layer, decoded.activation[None])[0]
            except InspectorError as exc:
                self.error = str(exc)
        self.compare = compare

    def finetune(self, *, epochs: int = 5):
        """Fine-tune the model's suffix on the dataset's records; the new version is saved and then shown."""
        inspector, dataset = self.inspector, self.datasets.dataset
        project, version = inspector.project_obj, inspector.model_version
        if project is None:
            return

        def work(progress):
            from engine.model.finetune import finetune_suffix

            current = project.with_model(version) if version else project
            return finetune_suffix(current, dataset, epochs=epochs, unknown_labels="skip", progress=progress)

        def apply(result):
            if inspector.project_obj is not project:  # another project was opened meanwhile
                return
            inspector.reload_project()
            self.notice = (
                f"Fine-tuned for {len(result.history)} epochs on {result.n_records} records of {dataset!r}"
                + (f" ({result.skipped} with labels outside the model's classes skipped)" if result.skipped else "")
                + f": their loss {result.loss_before:.3f} → {result.loss_after:.3f}, accuracy "
                f"{result.accuracy_before:.0%} → {result.accuracy_after:.0%}. Saved as {result.path.name}; "
                "the original model is unchanged."
            )
            self.refresh_versions(select=str(result.path.relative_to(project.path)))

        self.jobs.submit("finetune", f"fine-tuning on {dataset}", work, apply)

    def refit_probe(self, *_, record_weight: float = 10.0):
        """Refit the probe on the project's labelled activations plus the dataset's records (each weighing as much
        as ``record_weight`` samples: a few corrections among thousands of samples would barely move it)."""
        inspection, datasets = self.inspector.inspection, self.datasets
        if inspection is None:
            return
        dataset, handle = datasets.dataset, datasets.current()

        def work(progress):
            from engine.explore.probe import finetune_probe

            layer = handle.manifest()["layer"] if handle.exists else None
            if layer is not None and layer != inspection.layer:
                raise InspectorError(f"dataset {dataset!r} holds activations of layer {layer!r}; the plot shows "
                                     f"{inspection.layer!r}: switch to that layer to refit the probe with it")
            progress("fitting", 0, 2)
            probe = finetune_probe(inspection.project, dataset, record_weight=record_weight)
            progress("predicting every sample", 1, 2)
            plot_table(inspection, probe)  # on the worker: every sample is predicted
            return probe

        def apply(probe):
            unvalidated = probe.unvalidated_note()
            self.notice = (f"Probe refitted with the records of {dataset!r} (each weighing {record_weight:g} "
                           f"samples): validation accuracy {probe.validation_accuracy_:.1%} on "
                           f"{len(probe.validation_index_):,} held-out samples"
                           + (f"; {unvalidated}." if unvalidated else "."))
            self.inspector.show_probe(inspection, probe)

        self.jobs.submit("probe", f"probe with {dataset}", work, apply)
