"""The decoded landscape under the latent plot's points: a map layer chosen above the plot (decision, uncertainty,
round-trip error, distance to the data, gradient, decoded atlas), computed by the engine over the plot's view
(:mod:`engine.explore.landscape`) and drawn under the points."""
