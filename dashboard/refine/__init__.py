"""Refining the model by moving samples on the Inspect tab's plot (``state``, ``views``)."""

__all__: list[str] = []
