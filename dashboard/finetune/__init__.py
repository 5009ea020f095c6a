"""Training on a generated dataset and the model versions it makes (``state``, ``views``)."""

__all__: list[str] = []
