"""Latent Inspector's dashboard: a Panel app over the engine; it shows, the engine computes.

``panel serve dashboard/app.py`` (or ``latent-inspector serve``) serves it; in a notebook,
``Dashboard(project="mnist")`` displays inline after ``dashboard.extension()``.
"""

__all__ = ["Dashboard", "extension", "serve"]


def __getattr__(name):  # imported lazily: importing the package must not load Panel, HoloViews or the engine
    if name in ("Dashboard", "extension"):
        from . import template

        return getattr(template, name)
    if name == "serve":
        from .serve import serve

        return serve
    raise AttributeError(name)
