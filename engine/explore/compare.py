"""Compare view: two inspections of the same samples side by side -- two layers of one model, or the same layer of
two models kept in one project folder (a 10-D and a 16-D bottleneck, say) -- with selections linked by sample id.

A project folder may hold several model files; its manifest names the one the project uses. To inspect another,
:meth:`Project.with_model <engine.data.project.Project.with_model>` gives a copy of the project pointing at it (same
inputs, labels and views), and an :class:`~engine.explore.inspection.Inspection` of that copy is built as usual::

    other = project.with_model("ae16.keras")
    pair = compare(Inspection(project, "bottleneck"), Inspection(other, "bottleneck"))
    pair.to_right(select_box(pair.left.embedding, 0, 1, 0, 1)).xy    # where the cluster lands on the right
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from engine.errors import SelectionError
from engine.explore.selection import MappedSelection, map_selection

__all__ = ["Comparison", "compare"]


@dataclass(frozen=True)
class Comparison:
    """Two inspections of the same samples, with selections carried from one to the other by sample id.

    Attributes
    ----------
    left, right : Inspection
    """

    left: object
    right: object

    def to_right(self, ids) -> MappedSelection:
        """A selection made on the left, with its coordinates on the right.

        Example
        -------
        >>> pair.to_right(select_box(pair.left.embedding, 0, 1, 0, 1)).xy   # doctest: +SKIP
        """
        return map_selection(ids, self.left, self.right)

    def to_left(self, ids) -> MappedSelection:
        """A selection made on the right, with its coordinates on the left.

        Example
        -------
        >>> pair.to_left([3, 17]).ids   # doctest: +SKIP
        array([ 3, 17])
        """
        return map_selection(ids, self.right, self.left)


def compare(left, right) -> Comparison:
    """Pair two inspections for a compare view, checking that they show the same samples.

    Parameters
    ----------
    left, right : Inspection
        Two layers of one project, or the same layer of two models of one folder
        (:meth:`~engine.data.project.Project.with_model`).

    Returns
    -------
    Comparison

    Raises
    ------
    SelectionError
        Different numbers of samples, or different input files.

    Example
    -------
    >>> pair = compare(Inspection(p, "encoder_relu"), Inspection(p, "bottleneck"))   # doctest: +SKIP
    >>> pair.to_right([3, 17]).xy.shape                                              # doctest: +SKIP
    (2, 2)
    """
    n_left, n_right = len(left.embedding), len(right.embedding)
    names = [f"layer {v.layer!r} of {Path(v.project.model_path).name}" for v in (left, right)]
    if n_left != n_right:
        raise SelectionError(f"cannot compare {names[0]} ({n_left} samples) with {names[1]} ({n_right} samples): "
                             "a compare view needs the same samples on both sides")
    if left.project.data_hash() != right.project.data_hash():
        raise SelectionError(f"cannot compare {names[0]} with {names[1]}: they read different input files "
                             f"({left.project.inputs_path.name}, {right.project.inputs_path.name})")
    return Comparison(left, right)
