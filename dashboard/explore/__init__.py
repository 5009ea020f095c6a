"""The Explore tab: the latent editor, interpolation and nearest samples around a point (``state``, ``views``)."""

__all__: list[str] = []
