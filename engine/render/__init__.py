"""Pictures of a latent space: a datashader pipeline of explicit stages, PNGs, parallel coordinates, samples.

The stages stay visible, as in datashader's own pipeline::

    frame = points_frame(embedding, labels, class_names)          # stage 0: x, y, categorical label
    agg = aggregate(frame, canvas=make_canvas(embedding))         # stage 1: Canvas -> points(count_cat("label"))
    img = shade(agg)                                              # stage 2: shade -> dynspread -> background
    pil = img.to_pil()

An embedding in memory gives a pandas frame; an embedding store of the engine gives a Dask frame, aggregated on the
workers (:mod:`engine.backends.dask`): the same picture. The dashboard redraws on every pan and zoom through a faster
path to the same pixels (:class:`PointIndex`, :func:`aggregate_colors`, :func:`shade_colors`).

* :mod:`engine.render.frame`: stage 0, colours and canvas;
* :mod:`engine.render.bins`: stage 1, and the per-view index;
* :mod:`engine.render.pyramid`: stage 1 for zoomed-out views of many points: per-category counts at every
  resolution, built once out of core and stored, read by pixels instead of points;
* :mod:`engine.render.shading`: stage 2;
* :mod:`engine.render.png`: the whole pipeline in one call, a PNG with a legend and a grid of decodes;
* :mod:`engine.render.parallel`: parallel coordinates of a layer;
* :mod:`engine.render.samples`: one sample as pixels, by its view kind.
"""

from engine.lazy import lazy_exports

_EXPORTS = {
    "GRID": "engine.render.bins",
    "PointIndex": "engine.render.bins",
    "Pyramid": "engine.render.pyramid",
    "aggregate": "engine.render.bins",
    "aggregate_colors": "engine.render.bins",
    "aggregate_pyramid": "engine.render.pyramid",
    "build_pyramid": "engine.render.pyramid",
    "color_key": "engine.render.frame",
    "data_ranges": "engine.render.frame",
    "grid_positions": "engine.render.png",
    "index_frame": "engine.render.bins",
    "index_points": "engine.render.bins",
    "latent_image": "engine.render.png",
    "make_canvas": "engine.render.frame",
    "open_point_index": "engine.render.bins",
    "open_pyramid": "engine.render.pyramid",
    "padded_range": "engine.render.frame",
    "points_frame": "engine.render.frame",
    "sample_picture": "engine.render.samples",
    "save_point_index": "engine.render.bins",
    "save_pyramid": "engine.render.pyramid",
    "shade": "engine.render.shading",
    "shade_colors": "engine.render.shading",
    "to_image": "engine.render.samples",
    "to_pixels": "engine.render.samples",
    "to_rgb_array": "engine.render.samples",
    "view_shape": "engine.render.samples",
    "write_png": "engine.render.png",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
