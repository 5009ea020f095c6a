"""The Inspect tab: the session's choices and inspection (``state``), the sidebar (``controls``), and the latent plot,
decoded output, cursor and history (``views``)."""

__all__: list[str] = []
