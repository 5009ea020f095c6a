"""The Units tab: what drives one unit, from the data and by optimization (``state``, ``views``)."""

__all__: list[str] = []
