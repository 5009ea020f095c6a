"""The search of the Inspect tab: samples matching conditions on label, prediction and metadata (``state``,
``views``)."""

__all__: list[str] = []
