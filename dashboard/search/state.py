"""The search of one session: which samples match conditions on their label, predicted class and metadata.

:class:`Search` follows an :class:`~dashboard.inspector.state.Inspector`: its table is the samples' table of the plot
(:func:`engine.explore.search.sample_table`: the plot's columns beside the project's metadata), its columns are the
engine's description of that table (:func:`engine.explore.search.columns`), and its matches the engine's answer to
the conditions (:func:`engine.explore.search.match_all`). The condition being built (a column and a value) applies
as soon as it is set; conditions kept with :meth:`Search.keep` add to it with AND. Nothing is computed here.
"""

from __future__ import annotations

import numpy as np
import param

from engine.errors import InspectorError

from ..inspector.state import Follower

__all__ = ["OP_OF_KIND", "Search"]

#: The operator the search box applies to a column of each kind (:data:`engine.explore.search.OPS`).
OP_OF_KIND = {"category": "one of", "number": "range", "text": "contains"}


class Search(Follower):
    """The samples matching the conditions of one session's search.

    Parameters
    ----------
    inspector : Inspector

    Example
    -------
    >>> search = Search(inspector=store)                        # doctest: +SKIP
    >>> search.column = "label"; search.value = ["3"]             # doctest: +SKIP
    >>> len(search.matches), search.summary                       # doctest: +SKIP
    (1032, '1,032 of 10,000 match')
    """

    table = param.DataFrame(default=None, allow_None=True, doc="The samples' table: the plot's columns and the "
                            "project's metadata (None while there is no complete picture)")
    columns = param.List(default=[], doc="engine.explore.search.Column of each searchable column")
    column = param.Selector(default=None, objects=[None], allow_None=True, doc="The column of the condition built")
    value = param.Parameter(default=None, doc="Its value: a list of categories, (lo, hi), or a text; None or empty: "
                            "no condition yet")
    kept = param.List(default=[], doc="Conditions kept (engine Condition), combined with the one built by AND")
    matches = param.Array(default=None, allow_None=True, doc="Ids of the matching samples; None without a condition")
    isolate = param.Boolean(default=False, doc="Show only the matches on the plot")
    summary = param.String(default="", doc="How many match, in words")

    def __init__(self, **params):
        super().__init__(**params)
        self._metadata = (None, None)  # (project object, its metadata table or None)
        self.inspector.param.watch(self._follow, ["points", "project_obj"])
        self._follow()

    # -- the table -------------------------------------------------------------------------------------------------

    def metadata(self):
        """The project's metadata table (None without one; a malformed one sets :attr:`error`), read once."""
        project = self.inspector.project_obj
        if self._metadata[0] is not project:
            table = None
            if project is not None:
                try:
                    table = project.metadata()
                except InspectorError as exc:
                    self.error = f"Metadata not shown: {exc}"
            self._metadata = (project, table)
        return self._metadata[1]

    def _follow(self, *events):
        """A new plot table: the samples' table follows; a new project starts the search afresh."""
        from engine.explore.search import columns, sample_table

        inspector = self.inspector
        points, inspection = inspector.points, inspector.inspection
        if any(e.name == "project_obj" for e in events):
            self.param.update(kept=[], value=None, isolate=False)
        if points is None or inspection is None or inspector.moving or len(points) != len(inspection.embedding):
            self.param.update(table=None, columns=[], matches=None, summary="")
            return
        try:
            table = sample_table(points, self.metadata())
        except InspectorError as exc:
            self.error = f"Metadata not shown: {exc}"
            table = points
        described = columns(table)
        names = [c.name for c in described]
        self.param.column.objects = names or [None]
        column = self.column if self.column in names else (names[0] if names else None)
        keep_value = column == self.column
        self.param.update(table=table, columns=described)
        if not keep_value:
            self.param.update(column=column, value=None)
        self.kept = [c for c in self.kept if c.column in names]
        self.run()

    # -- the conditions --------------------------------------------------------------------------------------------

    def described(self, name=None):
        """The engine's :class:`~engine.explore.search.Column` of ``name`` (default the column chosen), or None."""
        name = self.column if name is None else name
        return next((c for c in self.columns if c.name == name), None)

    def current(self):
        """The condition built (an engine Condition), or None while its value says nothing yet: no category
        picked, an empty text, or a range that spans the whole column."""
        from engine.explore.search import Condition

        column, value = self.described(), self.value
        if column is None or value is None:
            return None
        op = OP_OF_KIND[column.kind]
        if op == "one of":
            value = [str(v) for v in value]
            return Condition(column.name, op, value) if value else None
        if op == "contains":
            text = str(value).strip()
            return Condition(column.name, op, text) if text else None
        lo, hi = value
        if column.lo is not None and lo <= column.lo and hi >= column.hi:
            return None
        return Condition(column.name, op, (float(lo), float(hi)))

    @param.depends("column", watch=True)
    def _column_changed(self):
        self.value = None

    @param.depends("value", "kept", watch=True)
    def run(self):
        """The matches of the conditions kept and the one built (the engine's), and their count in words."""
        from engine.explore.search import match_all

        table = self.table
        conditions = self.kept + ([c] if (c := self.current()) is not None else [])
        if table is None or not conditions:
            self.param.update(matches=None, summary="")
            return
        try:
            ids = np.flatnonzero(match_all(table, conditions))
        except InspectorError as exc:
            self.error = str(exc)
            return
        self.param.update(matches=ids, summary=f"{len(ids):,} of {len(table):,} match")

    def keep(self, *_):
        """Keep the condition built, and start another: the next one narrows the matches (AND)."""
        condition = self.current()
        if condition is not None:
            self.param.update(kept=self.kept + [condition], value=None)

    def clear(self, *_):
        """Forget every condition: nothing is highlighted any more."""
        self.param.update(kept=[], value=None, isolate=False)

    def conditions_words(self) -> list[str]:
        """Every condition in force, in words."""
        current = self.current()
        return [c.words() for c in self.kept + ([current] if current is not None else [])]
