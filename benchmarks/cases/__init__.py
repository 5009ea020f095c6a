"""Benchmark cases. Each module has ``run(quick: bool) -> list[Comparison]`` and a one-line docstring."""

CASES = ("propagation", "frameworks", "reducers", "first_picture", "inverse_methods", "landscape", "decode", "render",
         "browser", "gpu")
