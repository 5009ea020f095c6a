"""The selection of the Inspect tab: samples boxed or lassoed on the plot, labelled, saved, exported (``state``,
``views``)."""

__all__: list[str] = []
