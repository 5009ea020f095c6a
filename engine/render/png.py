"""A PNG of a latent space: the pipeline in one call, a legend, and a grid of what the model decodes.

:func:`latent_image` runs ``points_frame -> aggregate -> shade`` and returns a PIL image; :func:`write_png` adds a
legend and, given ``decode_fn`` and ``draw_fn``, a grid of what the model decodes at regularly sampled 2-D
positions. The PNG is composed with matplotlib when it is installed and with PIL otherwise.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from pathlib import Path

import numpy as np

from engine.errors import RenderError
from engine.render.bins import aggregate
from engine.render.frame import color_key, make_canvas, padded_range, points_frame
from engine.render.samples import to_rgb_array
from engine.render.shading import shade

__all__ = ["grid_positions", "latent_image", "write_png"]


def latent_image(
    embedding,
    labels=None,
    *,
    class_names=None,
    width: int = 600,
    height: int = 600,
    x_range=None,
    y_range=None,
    how: str = "eq_hist",
    spread: bool = True,
    background: str | None = "white",
):
    """Run the whole pipeline and return a PIL image (y grows upwards, like the plot).

    Examples
    --------
    >>> E = np.random.default_rng(0).normal(size=(1000, 2))
    >>> latent_image(E, np.arange(1000) % 3, width=64, height=48).size
    (64, 48)
    """
    frame = points_frame(embedding, labels, class_names)
    canvas = make_canvas(embedding, width=width, height=height, x_range=x_range, y_range=y_range)
    agg = aggregate(frame, canvas=canvas)
    return shade(agg, how=how, spread=spread, background=background).to_pil()


def grid_positions(x_range, y_range, n: int = 6, margin: float = 0.1) -> np.ndarray:
    """``n * n`` regularly spaced 2-D points, row by row from the top (high y) left, inside the ranges.

    Returns
    -------
    ndarray of shape (n * n, 2), float32
    """
    (x0, x1), (y0, y1) = x_range, y_range
    mx, my = margin * (x1 - x0), margin * (y1 - y0)
    xs = np.linspace(x0 + mx, x1 - mx, n)
    ys = np.linspace(y1 - my, y0 + my, n)
    gx, gy = np.meshgrid(xs, ys)
    return np.c_[gx.ravel(), gy.ravel()].astype(np.float32)


def _decode_tiles(positions, decode_fn, draw_fn, tile: int) -> list:
    from PIL import Image

    outputs = decode_fn(positions)
    tiles = []
    for out in outputs:
        img = Image.fromarray(to_rgb_array(draw_fn(out)))
        img.thumbnail((tile, tile), Image.Resampling.NEAREST if max(img.size) < tile else Image.Resampling.LANCZOS)
        if max(img.size) < tile:
            scale = tile / max(img.size)
            img = img.resize(
                (max(1, round(img.width * scale)), max(1, round(img.height * scale))), Image.Resampling.NEAREST
            )
        tiles.append(img)
    return tiles


def _compose_pil(latent, legend, tiles, n, marks, title, tile):
    from PIL import Image, ImageDraw, ImageFont

    try:
        font = ImageFont.load_default(size=14)
    except TypeError:  # Pillow < 10.1
        font = ImageFont.load_default()
    pad, swatch, line = 12, 12, 18
    legend_w = 0
    if legend:
        legend_w = pad + swatch + 6 + max(int(font.getlength(name)) for name, _ in legend) + pad
    grid_w = (n * (tile + 4) + pad) if tiles else 0
    title_h = line + pad if title else 0
    height = title_h + pad + max(latent.height, len(legend) * line, (n * (tile + 4)) if tiles else 0) + pad
    width = pad + latent.width + legend_w + grid_w + pad
    page = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(page)
    if title:
        draw.text((pad, pad), title, fill="black", font=font)
    top = title_h + pad
    page.paste(latent.convert("RGB"), (pad, top))
    draw.rectangle([pad - 1, top - 1, pad + latent.width, top + latent.height], outline="#888888")
    for px, py in marks:  # where the decodes were taken
        x, y = pad + px, top + py
        draw.line([x - 4, y, x + 4, y], fill="black", width=1)
        draw.line([x, y - 4, x, y + 4], fill="black", width=1)
    lx = pad + latent.width + pad
    for j, (name, color) in enumerate(legend):
        y = top + j * line
        draw.rectangle([lx, y + 3, lx + swatch, y + 3 + swatch], fill=color)
        draw.text((lx + swatch + 6, y), name, fill="black", font=font)
    gx = pad + latent.width + legend_w
    for i, img in enumerate(tiles):
        r, c = divmod(i, n)
        x0, y0 = gx + c * (tile + 4), top + r * (tile + 4)
        page.paste(img, (x0 + (tile - img.width) // 2, y0 + (tile - img.height) // 2))
        draw.rectangle([x0 - 1, y0 - 1, x0 + tile, y0 + tile], outline="#cccccc")
    return page


def _compose_matplotlib(latent, legend, tiles, n, extent, positions, title, path, dpi=100):
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    ncols = 2 if tiles else 1
    fig = Figure(figsize=(6.5 * ncols, 6.5), dpi=dpi, layout="constrained")
    axes = fig.subplots(1, ncols, squeeze=False)[0]
    ax = axes[0]
    ax.imshow(np.asarray(latent.convert("RGB")), extent=extent, origin="upper", aspect="auto")
    ax.set_xlabel("dim 1")
    ax.set_ylabel("dim 2")
    if positions is not None:
        ax.plot(positions[:, 0], positions[:, 1], "k+", markersize=6)
    if legend:
        ax.legend(
            handles=[Patch(color=c, label=name) for name, c in legend],
            loc="upper left",
            bbox_to_anchor=(1.01, 1.0),
            frameon=False,
            fontsize="small",
        )
    if tiles:
        tile = max(max(t.size) for t in tiles)
        mosaic = np.full((n * (tile + 2), n * (tile + 2), 3), 255, np.uint8)
        for i, img in enumerate(tiles):
            r, c = divmod(i, n)
            a = np.asarray(img)
            mosaic[r * (tile + 2) : r * (tile + 2) + a.shape[0], c * (tile + 2) : c * (tile + 2) + a.shape[1]] = a
        axes[1].imshow(mosaic)
        axes[1].set_axis_off()
        axes[1].set_title("decoded at the + marks", fontsize="small")
    if title:
        fig.suptitle(title)
    fig.savefig(path)


def write_png(
    path,
    embedding,
    labels=None,
    *,
    class_names=None,
    decode_fn: Callable[[np.ndarray], object] | None = None,
    draw_fn: Callable[[object], np.ndarray] | None = None,
    grid: int = 6,
    size: int = 600,
    tile: int = 64,
    title: str | None = None,
    how: str = "eq_hist",
    compositor: str = "auto",
    underlay: Callable[[tuple, tuple, int], np.ndarray] | None = None,
) -> Path:
    """Write a PNG of the latent space coloured by label, with a legend and an optional grid of decodes.

    Parameters
    ----------
    path : str or Path
    embedding : array of shape (n, 2)
    labels : array of shape (n,), optional
    class_names : sequence of str, optional
        Names of integer labels (legend text).
    decode_fn : callable, optional
        ``decode_fn(xy (k, 2)) -> outputs`` (k items): the inverse map plus the rest of the model.
    draw_fn : callable, optional
        ``draw_fn(output) -> image array`` (2-D grey or (H, W, 3|4)); required with ``decode_fn``.
    grid : int, default=6
        The decodes are taken on a ``grid x grid`` lattice over the embedding (marked with + on the map).
    size : int, default=600
        Pixel size of the latent-space panel.
    tile : int, default=64
        Pixel size of one decode.
    title : str, optional
    how : str, default="eq_hist"
        Datashader scaling.
    compositor : {"auto", "matplotlib", "pil"}, default="auto"
        ``"auto"`` uses matplotlib when it is installed, else PIL.
    underlay : callable, optional
        ``underlay(x_range, y_range, size) -> RGBA uint8 (H, W, 4)``, first row at the top: drawn under the points,
        stretched over the panel (a map layer of :mod:`engine.explore.landscape`, coloured by
        :func:`engine.render.landscape.to_rgba`).

    Returns
    -------
    Path
        The written file.

    Raises
    ------
    RenderError
        Bad shapes, ``decode_fn`` without ``draw_fn``, or an unknown compositor.
    ImportError
        ``compositor="matplotlib"`` without matplotlib (``pip install matplotlib``).

    Examples
    --------
    >>> write_png("latent.png", embedding, labels, decode_fn=lambda xy: model_decode(xy),   # doctest: +SKIP
    ...           draw_fn=lambda out: out.reshape(28, 28))
    """
    if decode_fn is not None and draw_fn is None:
        raise RenderError("write_png: decode_fn needs a draw_fn(output) -> image array to draw each decode.")
    if compositor not in ("auto", "matplotlib", "pil"):
        raise RenderError(f"write_png: compositor must be 'auto', 'matplotlib' or 'pil', got {compositor!r}.")
    has_mpl = importlib.util.find_spec("matplotlib") is not None
    if compositor == "matplotlib" and not has_mpl:
        raise ImportError("write_png(compositor='matplotlib') needs matplotlib: pip install matplotlib.")
    use_mpl = compositor == "matplotlib" or (compositor == "auto" and has_mpl)

    E = np.asarray(embedding)
    x_range, y_range = padded_range(E[:, 0]), padded_range(E[:, 1])
    frame = points_frame(E, labels, class_names)
    canvas = make_canvas(width=size, height=size, x_range=x_range, y_range=y_range)
    agg = aggregate(frame, canvas=canvas)
    img = shade(agg, how=how, background=None if underlay is not None else "white")
    latent = img.to_pil()
    if underlay is not None:
        from PIL import Image

        under = Image.fromarray(np.ascontiguousarray(underlay(x_range, y_range, size), dtype=np.uint8), "RGBA")
        base = Image.new("RGBA", (size, size), "white")
        base.alpha_composite(under.resize((size, size), Image.Resampling.NEAREST))
        base.alpha_composite(latent.convert("RGBA"))
        latent = base.convert("RGB")

    legend = []
    if "label" in frame:
        categories = [str(c) for c in frame["label"].cat.categories]
        present = set(frame["label"].astype(str).unique())
        keys = color_key(categories)
        legend = [(c, keys[c]) for c in categories if c in present]

    tiles, positions, marks = [], None, []
    if decode_fn is not None:
        positions = grid_positions(x_range, y_range, n=grid)
        tiles = _decode_tiles(positions, decode_fn, draw_fn, tile)
        sx = size / (x_range[1] - x_range[0])
        sy = size / (y_range[1] - y_range[0])
        marks = [((x - x_range[0]) * sx, (y_range[1] - y) * sy) for x, y in positions]

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if use_mpl:
        extent = (x_range[0], x_range[1], y_range[0], y_range[1])
        _compose_matplotlib(latent, legend, tiles, grid, extent, positions, title, path)
    else:
        _compose_pil(latent, legend, tiles, grid, marks, title, tile).save(path, format="PNG")
    return path
