"""Stage 1: points binned into pixels.

:func:`aggregate` is datashader's ``Canvas.points`` with a reduction object (``count_cat`` of the label by default),
for a pandas or a Dask DataFrame alike. The dashboard redraws on every pan and zoom, so it takes a faster path to
the same picture: the points are indexed once by a coarse grid (:class:`PointIndex`), and each view accumulates only
what shading needs, per pixel the number of points and the sum of their category colours (:func:`aggregate_colors`;
shaded by :func:`engine.render.shading.shade_colors`).

``count_cat`` keeps one count plane per category (800 x 800 x 10 cells) and ``tf.shade`` then reduces those planes
to a colour and an alpha per pixel; at ten million points both stages are memory-bound (about 120 ms each on
2 cores). Points are binned with datashader's own formula, so the images are the same pixel for pixel
(``tests/test_render.py`` compares them with ``tf.shade`` of ``count_cat``). One case needs the category counts
themselves: when every pixel of the view holds every category, ``tf.shade`` mixes only the counts above the smallest
one (its ``color_baseline``); :func:`aggregate_colors` then finds it in a second pass. The :class:`PointIndex`
orders the points by a coarse grid over their bounds: the aggregation then writes the image in memory order, and a
zoomed view reads only the grid cells it overlaps.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numba
import numpy as np

from engine.errors import RenderError
from engine.render.frame import color_key

__all__ = ["GRID", "PointIndex", "aggregate", "aggregate_colors", "index_frame", "index_points", "open_point_index",
           "save_point_index"]


def aggregate(frame, *, canvas, reduction=None):
    """Stage 1: bin the points into pixels.

    Parameters
    ----------
    frame : DataFrame from :func:`points_frame`
    canvas : datashader.Canvas
    reduction : datashader reduction, optional
        Default ``ds.count_cat("label")`` when ``frame`` has labels, else ``ds.count()``.

    Returns
    -------
    xarray.DataArray
    """
    import datashader as ds

    if reduction is None:
        reduction = ds.count_cat("label") if "label" in frame else ds.count()
    return canvas.points(frame, "x", "y", agg=reduction)


#: Cells per side of the :class:`PointIndex` grid.
GRID = 1024


@dataclass(frozen=True, eq=False)
class PointIndex:
    """Points sorted by the cell of a ``grid x grid`` lattice over their bounds, with their category codes.

    Built once per data set by :func:`index_points` or :func:`index_frame`; read by :func:`aggregate_colors`.
    Points with a non-finite coordinate or without a category are left out (datashader draws neither).

    Attributes
    ----------
    x, y : ndarray of shape (m,)
        Coordinates in cell order (row by row from the bottom), dtype of the input.
    codes : ndarray of shape (m,)
        Category code of each point (uint8 up to 256 categories).
    categories : tuple of str
    offsets : ndarray of shape (grid * grid + 1,), int64
        The points of cell ``(row, col)`` are ``offsets[row * grid + col] : offsets[row * grid + col + 1]``.
    bounds : tuple of float
        ``(x0, x1, y0, y1)`` of the points.
    grid : int
    order : ndarray of shape (m,), optional
        Row of each indexed point in the arrays it was built from (uint32 below 2**32 points): what
        :meth:`nearest` answers with.
    """

    x: np.ndarray
    y: np.ndarray
    codes: np.ndarray
    categories: tuple[str, ...]
    offsets: np.ndarray
    bounds: tuple[float, float, float, float]
    grid: int
    order: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.x)

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in (self.x, self.y, self.codes, self.offsets, self.order) if a is not None)

    def nearest(self, x: float, y: float, within: float | None = None) -> int | None:
        """Row (in the arrays the index was built from) of the indexed point nearest to ``(x, y)``, anywhere in the
        plane; None when the index holds no point or no row order. It reads the grid cells in rings around the
        query's cell until no unread cell can hold a nearer point: a few cells inside the data, whatever the number
        of points (a k-d tree of every point is not needed). Far from the data, where rings would cross many empty
        cells, give ``within``: a distance the nearest point is known not to exceed (to the nearest of a sample of
        the points, say); only the points of the cells that the disk of that radius overlaps are read then, one
        contiguous run per grid row.

        Examples
        --------
        >>> index = index_points(np.array([0.0, 1.0, 5.0]), np.array([0.0, 1.0, 5.0]), np.array([0, 1, 0]), "ab")
        >>> index.nearest(0.9, 0.8), index.nearest(100.0, -3.0)
        (1, 2)
        """
        if not len(self) or self.order is None:
            return None
        kx, ky = self.cell_scale
        args = (self.x, self.y, self.offsets, self.grid, self.bounds[0], kx, self.bounds[2], ky, float(x), float(y))
        found = -1 if within is None or not np.isfinite(within) else _nearest_within(*args, float(within))
        if found < 0:  # no bound, or none within it
            found = _nearest(*args)
        return int(self.order[found])

    def count_in(self, x_range, y_range) -> int:
        """Points in the grid cells that the view ``x_range x y_range`` overlaps: what :func:`aggregate_colors`
        reads for it (at least the points in the view), counted from the offsets alone."""
        (x0, x1), (y0, y1) = (float(v) for v in x_range), (float(v) for v in y_range)
        if not len(self) or x1 < x0 or y1 < y0:
            return 0
        kx, ky = self.cell_scale
        bx0, bx1, by0, by1 = self.bounds
        if x1 < bx0 or x0 > bx1 or y1 < by0 or y0 > by1:
            return 0
        g = self.grid
        c0, c1 = _cell(x0, bx0, kx, g), _cell(x1, bx0, kx, g)
        rows = np.arange(_cell(y0, by0, ky, g), _cell(y1, by0, ky, g) + 1, dtype=np.int64) * g
        return int((self.offsets[rows + c1 + 1] - self.offsets[rows + c0]).sum())

    @property
    def cell_scale(self) -> tuple[float, float]:
        """Cells per unit along x and y (0 along an axis where every point has the same coordinate)."""
        x0, x1, y0, y1 = self.bounds
        return (self.grid / (x1 - x0) if x1 > x0 else 0.0), (self.grid / (y1 - y0) if y1 > y0 else 0.0)


@numba.njit(cache=True, nogil=True)
def _cell(v, v0, k, grid):
    """Grid cell of coordinate ``v`` (monotone in ``v``, clipped to the grid): shared by index and queries."""
    c = (v - v0) * k
    if c < 0.0:
        return 0
    if c >= grid:
        return grid - 1
    return int(c)


@numba.njit(cache=True, nogil=True)
def _bounds(x, y, codes, ncat):
    """``(x0, x1, y0, y1)`` of the points that are drawn (finite, with a category); zeros when there are none."""
    x0, x1, y0, y1 = np.inf, -np.inf, np.inf, -np.inf
    for i in range(x.shape[0]):
        if np.isfinite(x[i]) and np.isfinite(y[i]) and codes[i] >= 0 and codes[i] < ncat:
            x0, x1 = min(x0, x[i]), max(x1, x[i])
            y0, y1 = min(y0, y[i]), max(y1, y[i])
    if x0 > x1:
        return 0.0, 0.0, 0.0, 0.0
    return float(x0), float(x1), float(y0), float(y1)


@numba.njit(cache=True, nogil=True)
def _count_cells(x, y, codes, ncat, x0, kx, y0, ky, grid):
    """Cell of each point (-1: left out) and the cells' start offsets (the first pass of a counting sort)."""
    n = x.shape[0]
    cell = np.empty(n, np.int32)  # grid * grid < 2**31
    offsets = np.zeros(grid * grid + 1, np.int64)
    for i in range(n):
        c = codes[i]
        if np.isfinite(x[i]) and np.isfinite(y[i]) and c >= 0 and c < ncat:
            cell[i] = _cell(y[i], y0, ky, grid) * grid + _cell(x[i], x0, kx, grid)
            offsets[cell[i] + 1] += 1
        else:
            cell[i] = -1
    for j in range(grid * grid):
        offsets[j + 1] += offsets[j]
    return cell, offsets


@numba.njit(cache=True, nogil=True)
def _scatter_cells(x, y, codes, cell, offsets, xs, ys, cs, rows):
    """Second pass: each point to the next free place of its cell (stable within a cell), with its row."""
    fill = offsets[:-1].copy()
    for i in range(x.shape[0]):
        c = cell[i]
        if c >= 0:
            j = fill[c]
            fill[c] = j + 1
            xs[j], ys[j], cs[j], rows[j] = x[i], y[i], codes[i], i


@numba.njit(cache=True, nogil=True)
def _nearest_in(xs, ys, start, stop, qx, qy, best, found):
    for i in range(start, stop):
        d = (xs[i] - qx) ** 2 + (ys[i] - qy) ** 2
        if d < best:
            best, found = d, i
    return best, found


@numba.njit(cache=True, nogil=True)
def _unread_gap(q, c, r, g0, k, grid):
    """Distance along one axis from coordinate ``q`` (in cell ``c``) to the cells more than ``r`` cells from ``c``
    on either side (inf where the grid ends first, or every point is in one cell: ``k`` 0), less a margin for the
    rounding of the cells' edges."""
    if k == 0.0:
        return np.inf
    side = 1.0 / k
    gap = np.inf
    if c - r > 0:
        gap = min(gap, q - (g0 + (c - r) * side))
    if c + r < grid - 1:
        gap = min(gap, g0 + (c + r + 1) * side - q)
    return max(gap - 1e-6 * side, 0.0)


@numba.njit(cache=True, nogil=True)
def _outside(q, g0, k, grid):
    """How far coordinate ``q`` lies outside the grid's span along one axis (0 inside; less a rounding margin)."""
    if k == 0.0:
        return 0.0
    side = 1.0 / k
    return max(g0 - q, q - (g0 + grid * side), 0.0) * (1.0 - 1e-9)


@numba.njit(cache=True, nogil=True)
def _nearest_within(xs, ys, offsets, grid, gx0, kx, gy0, ky, qx, qy, radius):
    """Position of the point nearest to ``(qx, qy)`` among those no farther than ``radius`` (-1: none): per grid
    row that the disk overlaps, the run of cells its chord spans (a margin covers the rounding of cell edges)."""
    reach = radius * (1.0 + 1e-6) + 1e-12
    best, found = np.inf, -1
    side_y = 1.0 / ky if ky != 0.0 else 0.0
    for row in range(_cell(qy - reach, gy0, ky, grid), _cell(qy + reach, gy0, ky, grid) + 1):
        dy = 0.0
        if ky != 0.0:  # the row's nearest y to the query (the grid's edge rows reach beyond it)
            lo, hi = gy0 + row * side_y, gy0 + (row + 1) * side_y
            if row > 0 and qy < lo:
                dy = lo - qy
            elif row < grid - 1 and qy > hi:
                dy = qy - hi
            dy = max(dy - 1e-6 * side_y, 0.0)
        if dy > reach:
            continue
        half = np.sqrt(reach * reach - dy * dy)
        base = row * grid
        c0, c1 = _cell(qx - half, gx0, kx, grid), _cell(qx + half, gx0, kx, grid)
        best, found = _nearest_in(xs, ys, offsets[base + c0], offsets[base + c1 + 1], qx, qy, best, found)
    if found >= 0 and best > reach * reach:
        return -1
    return found


@numba.njit(cache=True, nogil=True)
def _nearest(xs, ys, offsets, grid, gx0, kx, gy0, ky, qx, qy):
    """Position of the point nearest to ``(qx, qy)`` (-1: none): the cells in square rings around the query's cell
    (the nearest border cell for a query outside the grid), until every unread cell lies farther than the best
    point found."""
    cx, cy = _cell(qx, gx0, kx, grid), _cell(qy, gy0, ky, grid)
    out_x, out_y = _outside(qx, gx0, kx, grid), _outside(qy, gy0, ky, grid)
    best, found = np.inf, -1
    for r in range(grid):
        for row in range(max(cy - r, 0), min(cy + r, grid - 1) + 1):
            base = row * grid
            if row == cy - r or row == cy + r:  # a whole side of the ring
                lo, hi = max(cx - r, 0), min(cx + r, grid - 1)
                best, found = _nearest_in(xs, ys, offsets[base + lo], offsets[base + hi + 1], qx, qy, best, found)
            else:  # its two ends
                if cx - r >= 0:
                    c = base + cx - r
                    best, found = _nearest_in(xs, ys, offsets[c], offsets[c + 1], qx, qy, best, found)
                if cx + r < grid:
                    c = base + cx + r
                    best, found = _nearest_in(xs, ys, offsets[c], offsets[c + 1], qx, qy, best, found)
        # an unread point is in a row beyond the ring (then at least gap_y away along y, and at least out_x along x
        # for a query beside the grid) or in a column beyond it
        gap_x, gap_y = _unread_gap(qx, cx, r, gx0, kx, grid), _unread_gap(qy, cy, r, gy0, ky, grid)
        if gap_x == np.inf and gap_y == np.inf:
            break
        if found >= 0 and min(gap_y * gap_y + out_x * out_x, gap_x * gap_x + out_y * out_y) >= best:
            break
    return found


@numba.njit(cache=True, nogil=True)
def _accumulate(xs, ys, codes, offsets, grid, gx0, kx, gy0, ky, table, x0, x1, y0, y1, out, per_category,
                band0, band1):
    """Bin each point in ``[x0, x1] x [y0, y1]`` whose pixel row is in ``[band0, band1)`` into its pixel of ``out``.

    ``per_category`` False: ``out`` is (H, W, 4) and a point adds 1, then its colour's r, g, b (``table[code]``).
    True: ``out`` is (H, W, categories) and a point adds 1 to its category, ``count_cat`` itself (``table``
    unused). Pixels as datashader's ``Canvas.points`` bins them (``int(x * sx + tx)``; the upper edge belongs to the
    last pixel); only the grid cells overlapping the view, and the band's grid rows (one more either side, for
    rounding), are read. Bands that do not overlap write disjoint rows of ``out``: threads may fill them at once.
    """
    height, width = out.shape[0], out.shape[1]
    sx = width / (x1 - x0)
    tx = -x0 * sx
    sy = height / (y1 - y0)
    ty = -y0 * sy
    c0, c1 = _cell(x0, gx0, kx, grid), _cell(x1, gx0, kx, grid)
    r0, r1 = _cell(y0, gy0, ky, grid), _cell(y1, gy0, ky, grid)
    if band0 > 0:
        r0 = max(r0, _cell(y0 + band0 / sy, gy0, ky, grid) - 1)
    if band1 < height:
        r1 = min(r1, _cell(y0 + band1 / sy, gy0, ky, grid) + 1)
    for row in range(r0, r1 + 1):
        for i in range(offsets[row * grid + c0], offsets[row * grid + c1 + 1]):
            x, y = xs[i], ys[i]
            if x0 <= x <= x1 and y0 <= y <= y1:
                xi = int(x * sx + tx)
                yi = int(y * sy + ty)
                if x == x1:
                    xi -= 1
                if y == y1:
                    yi -= 1
                if yi < band0 or yi >= band1:
                    continue
                c = codes[i]
                if per_category:
                    out[yi, xi, c] += 1
                else:
                    out[yi, xi, 0] += 1
                    out[yi, xi, 1] += table[c, 0]
                    out[yi, xi, 2] += table[c, 1]
                    out[yi, xi, 3] += table[c, 2]


def index_points(x, y, codes, categories, *, grid: int = GRID) -> PointIndex:
    """Stage 0 of the per-view path: order the points by grid cell, once per data set.

    A counting sort (linear in the number of points; about 0.3 s for ten million).

    Parameters
    ----------
    x, y : array of shape (n,)
        Coordinates (float32 or float64; kept as given, so the pixels are those datashader computes from them).
    codes : array of shape (n,), integer
        Category of each point, ``0 <= code < len(categories)``; other codes (pandas' -1 for missing) are left out.
    categories : sequence of str
    grid : int, default=1024

    Returns
    -------
    PointIndex

    Raises
    ------
    RenderError
        Arrays of different lengths, or no categories.

    Examples
    --------
    >>> index = index_points(np.array([0.0, 1.0]), np.array([0.0, 1.0]), np.array([0, 1]), ["a", "b"])
    >>> len(index), index.bounds
    (2, (0.0, 1.0, 0.0, 1.0))
    """
    x, y, codes = np.asarray(x), np.asarray(y), np.asarray(codes)
    if x.dtype.kind != "f":
        x = x.astype(np.float64)
    if y.dtype.kind != "f":
        y = y.astype(np.float64)
    if not (x.ndim == y.ndim == codes.ndim == 1 and len(x) == len(y) == len(codes)):
        raise RenderError(f"index_points needs x, y and codes of one length, got shapes {x.shape}, {y.shape}, "
                         f"{codes.shape}.")
    categories = tuple(str(c) for c in categories)
    if not categories:
        raise RenderError("index_points needs at least one category.")
    if not 1 <= grid <= 46_340:
        raise RenderError(f"index_points: grid must be between 1 and 46,340 (cells fit 32 bits), got {grid}.")
    if codes.dtype.kind not in "iu":
        raise RenderError(f"index_points needs integer category codes, got dtype {codes.dtype}.")
    bounds = _bounds(x, y, codes, len(categories))
    x0, x1, y0, y1 = bounds
    kx = grid / (x1 - x0) if x1 > x0 else 0.0
    ky = grid / (y1 - y0) if y1 > y0 else 0.0
    cell, offsets = _count_cells(x, y, codes, len(categories), x0, kx, y0, ky, int(grid))
    m = int(offsets[-1])
    xs, ys = np.empty(m, x.dtype), np.empty(m, y.dtype)
    cs = np.empty(m, np.uint8 if len(categories) <= 256 else np.uint16 if len(categories) <= 65536 else np.int64)
    rows = np.empty(m, np.uint32 if len(x) < 2**32 else np.int64)
    _scatter_cells(x, y, codes, cell, offsets, xs, ys, cs, rows)
    return PointIndex(xs, ys, cs, categories, offsets, bounds, int(grid), rows)


def index_frame(frame, by: str = "label", *, grid: int = GRID) -> PointIndex:
    """:func:`index_points` of a :func:`points_frame` (columns ``x``, ``y`` and the categorical column ``by``).

    Raises
    ------
    RenderError
        ``by`` is not a categorical column of ``frame``.
    """
    column = frame[by] if by in frame else None
    if column is None or not hasattr(column, "cat"):
        raise RenderError(f"index_frame: {by!r} is not a categorical column (columns: {', '.join(frame.columns)}).")
    return index_points(frame["x"].to_numpy(), frame["y"].to_numpy(), column.cat.codes.to_numpy(),
                        [str(c) for c in column.cat.categories], grid=grid)


#: Version of the stored point index's layout (:func:`save_point_index`).
_FORMAT = "latent-inspector point index 1"
_ARRAYS = ("x", "y", "codes", "offsets", "order")


def save_point_index(index: PointIndex, path) -> PointIndex:
    """Store ``index`` in the folder ``path`` (replaced), one ``.npy`` file per array, and return it opened from
    there (:func:`open_point_index`): its arrays then are pages of those files, mapped read-only, which the system
    keeps in its cache or drops, rather than memory of the process (1.3 GB at 100 million points).

    Written at a temporary name beside ``path`` and renamed into place once complete
    (:func:`engine.data.files.atomic_path`): a kill or a full disk leaves the old folder or the new one whole.
    """
    import json
    from pathlib import Path

    from engine.data.files import atomic_path, remove_dead_temporaries

    if index.order is None:
        raise RenderError("save_point_index needs an index with its rows' order (index_points gives one).")
    path = Path(path)
    remove_dead_temporaries(path)
    with atomic_path(path) as tmp:
        tmp.mkdir()
        for name in _ARRAYS:
            np.save(tmp / f"{name}.npy", getattr(index, name))
        (tmp / "index.json").write_text(json.dumps({
            "format": _FORMAT, "categories": list(index.categories), "bounds": list(index.bounds),
            "grid": index.grid, "points": len(index)}))
    return open_point_index(path)


def open_point_index(path) -> PointIndex:
    """The point index stored in the folder ``path`` (:func:`save_point_index`), its arrays memory-mapped.

    Raises
    ------
    RenderError
        ``path`` holds no point index of this format, or one whose files disagree with each other.
    """
    import json
    from pathlib import Path

    path = Path(path)
    try:
        meta = json.loads((path / "index.json").read_text())
        if meta.get("format") != _FORMAT:
            raise ValueError(f"format {meta.get('format')!r}")
        arrays = {name: np.load(path / f"{name}.npy", mmap_mode="r") for name in _ARRAYS}
        grid, points = int(meta["grid"]), int(meta["points"])
        if any(len(arrays[name]) != points for name in ("x", "y", "codes", "order")) \
                or arrays["offsets"].shape != (grid * grid + 1,) or int(arrays["offsets"][-1]) != points:
            raise ValueError("its arrays disagree in length")
    except Exception as exc:
        raise RenderError(f"{path} holds no point index ({_FORMAT}): {exc}") from None
    return PointIndex(arrays["x"], arrays["y"], arrays["codes"], tuple(meta["categories"]), arrays["offsets"],
                      tuple(float(b) for b in meta["bounds"]), grid, arrays["order"])


def aggregate_colors(index: PointIndex, *, canvas, colors=None):
    """Stage 1 of the per-view path: per pixel, the number of points and the sum of their category colours.

    Parameters
    ----------
    index : PointIndex
    canvas : datashader.Canvas
        Size and ranges of the view (:func:`make_canvas`).
    colors : dict, optional
        Category -> colour (default :func:`color_key` of the index's categories).

    Returns
    -------
    xarray.DataArray of shape (height, width, 4)
        Channels ``count``, ``r``, ``g``, ``b`` (uint32; uint64 above 16.8 million points, where a pixel's colour
        sum could overflow 32 bits); rows from the bottom of the view, as datashader's aggregates. ``attrs``: the
        view's ranges, the colour of each category (``colors``, RGB) and ``category_min``, the smallest count of
        any category in any pixel: not 0 only when every pixel holds every category, where ``tf.shade`` mixes the
        counts above it (its ``color_baseline``); found by a second pass over the view, then only.

    Raises
    ------
    RenderError
        A category without a colour.
    """
    table = color_table(index.categories, colors, "aggregate_colors").astype(np.uint32)
    width, height = int(canvas.plot_width), int(canvas.plot_height)
    dtype = np.uint32 if len(index) * 255 < 2**32 else np.uint64
    out = np.zeros((height, width, 4), dtype)
    (x0, x1), (y0, y1) = _view_ranges(index, canvas)
    category_min = 0
    if len(index) and width and height and x1 > x0 and y1 > y0:
        kx, ky = index.cell_scale
        args = (index.x, index.y, index.codes, index.offsets, index.grid, index.bounds[0], kx, index.bounds[2], ky)
        view = (float(x0), float(x1), float(y0), float(y1))
        table = table.astype(dtype)
        threads = _threads_for(index.count_in((x0, x1), (y0, y1)))
        _accumulate_in_bands(args, table, view, out, False, threads)
        if out[..., 0].min() >= len(index.categories):  # every pixel may hold every category
            counts = np.zeros((height, width, len(index.categories)), np.uint32)
            _accumulate_in_bands(args, table, view, counts, True, threads)
            category_min = int(counts.min())
    return colour_aggregate(out, (x0, x1), (y0, y1), table, category_min)


#: A view reading at least this many points is binned by several threads (:data:`BIN_THREADS`), in bands of pixel
#: rows; fewer are binned on the calling thread.
PARALLEL_POINTS = 1_000_000
#: Threads that bin one view: the machine's cores, at most 8.
BIN_THREADS = max(1, min(os.cpu_count() or 1, 8))
_bin_pool: ThreadPoolExecutor | None = None
_bin_pool_lock = threading.Lock()


def _threads_for(points: int) -> int:
    return BIN_THREADS if points >= PARALLEL_POINTS else 1


def _accumulate_in_bands(args, table, view, out, per_category: bool, threads: int) -> None:
    """:func:`_accumulate` over all of ``out``: at once, or by ``threads`` threads in four bands of pixel rows each
    (which share the work out as they finish: points gather unevenly along y). The compiled loop releases the
    interpreter's lock, the bands write disjoint rows, and the sums are of integers: the picture is the same."""
    height = out.shape[0]
    if threads <= 1 or height < 4 * threads:
        _accumulate(*args, table, *view, out, per_category, 0, height)
        return
    global _bin_pool
    with _bin_pool_lock:
        if _bin_pool is None:
            _bin_pool = ThreadPoolExecutor(BIN_THREADS, thread_name_prefix="latent-inspector-bin")
    edges = np.linspace(0, height, 4 * threads + 1).astype(int)
    jobs = [_bin_pool.submit(_accumulate, *args, table, *view, out, per_category, int(a), int(b))
            for a, b in zip(edges[:-1], edges[1:])]
    for job in jobs:
        job.result()


def color_table(categories, colors, who: str) -> np.ndarray:
    """RGB of each category (int64, one row per category), from ``colors`` (default :func:`color_key`).

    Raises
    ------
    RenderError
        A category without a colour, naming the caller ``who``.
    """
    from datashader.colors import rgb

    colors = colors or color_key(categories)
    missing = [c for c in categories if c not in colors]
    if missing:
        raise RenderError(f"{who}: no colour for categories {missing} (colors has {list(colors)}).")
    return np.array([rgb(colors[c]) for c in categories], np.int64)


def colour_aggregate(out, x_range, y_range, table, category_min: int):
    """The per-pixel aggregate ``out`` (height, width, 4: count and colour sums) as the DataArray that
    :func:`~engine.render.shade_colors` reads: pixel-centre coordinates over the ranges, the colours and
    ``category_min`` in its attrs."""
    import xarray as xr

    height, width = out.shape[:2]
    (x0, x1), (y0, y1) = x_range, y_range
    xs = x0 + (np.arange(width) + 0.5) * ((x1 - x0) / width) if width else np.zeros(0)
    ys = y0 + (np.arange(height) + 0.5) * ((y1 - y0) / height) if height else np.zeros(0)
    return xr.DataArray(out, dims=("y", "x", "channel"),
                        coords={"x": xs, "y": ys, "channel": ["count", "r", "g", "b"]},
                        attrs={"x_range": (x0, x1), "y_range": (y0, y1), "colors": np.asarray(table).tolist(),
                               "category_min": category_min})


def _view_ranges(index, canvas):
    x_range = canvas.x_range or (index.bounds[0], index.bounds[1])
    y_range = canvas.y_range or (index.bounds[2], index.bounds[3])
    return tuple(map(float, x_range)), tuple(map(float, y_range))


