"""The New project form: a model, its data and labels sent from the browser make a new project, which the session
then opens (``state``, ``views``). Shown only where the server allows uploads (:func:`state.uploads_enabled`)."""

__all__: list[str] = []
