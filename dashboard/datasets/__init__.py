"""The generated datasets and the probe: label decodes and save them (``state``, ``views``)."""

__all__: list[str] = []
