"""The Linked views tab: one selection of samples shown in every view (``state``, ``views``)."""

__all__: list[str] = []
