"""Stage 1 for zoomed-out views: per-category counts at every resolution, so that a view reads pixels, not points.

A :class:`Pyramid` holds, for a lattice of square cells over the plane, the number of points of each category in
every cell: at a base resolution (level 0) and at every coarser level, each level's cell two of the level below on
a side. A view is served by :meth:`Pyramid.snap`: its pixel side is made a power of two of cells along each axis
(within a factor of 1.41 of the pixel asked for), its ranges move out to cell edges, and its counts are block sums
of one level, :func:`aggregate_pyramid`. What a view costs is then its pixels times its categories, whatever the
number of points: a 700 x 500 view of 100 million points reads a few million cells.

The lattice is dyadic: the cell side is a power of two and the origin a multiple of it, so every edge of a snapped
view is a dyadic number, datashader's scale ``width / (x1 - x0)`` a power of two, and its binning
``int(x * sx + tx)`` exact for float32 coordinates: every point falls into the same pixel as into the lattice's
cell. The picture of a snapped view is therefore datashader's ``count_cat`` of that view, count for count, with one
exception that the tests account for: datashader puts a point lying exactly on a view's upper edge into the last
pixel, the lattice into the next cell. (For float64 coordinates, a point within one rounding of a cell edge may
fall on the other side.) A view whose pixel is finer than the base cell reads the points
(:class:`~engine.render.PointIndex`): zoomed in that far, few of them are in view.

Built in one pass over chunks of any sliceable arrays (NumPy, memory maps, Zarr arrays, Dask arrays), so the points
never need to fit in memory; the base level does (its size is bounded by ``max_bytes``). Stored next to the
embedding as a Zarr group, one array per level, chunks of 256 x 256 cells and every category, empty chunks not
written (:func:`save_pyramid`, :func:`open_pyramid`); a view then reads only the chunks it overlaps.

Array code is written against the namespace ``xp`` (:func:`engine.backends.cupy.get_namespace`): with CuPy arrays
in memory the block sums and the counting run on the GPU (the counting by ``cupyx.scatter_add``; on the CPU by a
numba loop, NumPy's ``add.at`` being fifty times slower).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numba
import numpy as np

from engine.backends.cupy import get_namespace, to_numpy
from engine.data.files import atomic_path, remove_dead_temporaries
from engine.errors import RenderError
from engine.memo import Memo

__all__ = ["Pyramid", "PyramidView", "aggregate_pyramid", "build_pyramid", "open_pyramid", "save_pyramid"]

#: Cells per side of level 0 at most (fewer when ``max_bytes`` would be exceeded).
BASE = 4096
#: Rows read per chunk while building.
CHUNK = 4_000_000
#: A view reads at most this many level cells per pixel (an aspect far from the data's); beyond, it reads points.
MAX_CELLS_PER_PIXEL = 64
_ZARR_CHUNK = 256
#: Chunks of a stored pyramid kept decompressed, per pyramid (each 256 x 256 cells x categories x 4 bytes: 2.6 MB
#: for 10 categories): a pan reads again most of the chunks of the view before it.
TILE_CACHE = 96
_FORMAT = "latent-inspector pyramid 1"


@dataclass(frozen=True)
class PyramidView:
    """A view snapped to the lattice of a :class:`Pyramid` (:meth:`Pyramid.snap`).

    Attributes
    ----------
    level : int
        The level read.
    mx, my : int
        Level cells per pixel along x and y (powers of two).
    col0, row0 : int
        The view's first pixel, counted in pixels from the lattice's origin.
    width, height : int
        Pixels.
    x_range, y_range : tuple of float
        The snapped ranges: ``x_range[1] - x_range[0] == width * mx * cell(level)``.
    """

    level: int
    mx: int
    my: int
    col0: int
    row0: int
    width: int
    height: int
    x_range: tuple[float, float]
    y_range: tuple[float, float]

    def cells(self, categories: int) -> int:
        """Level cells (times categories) that reading this view touches."""
        return self.width * self.mx * self.height * self.my * categories


@dataclass(frozen=True, eq=False)
class Pyramid:
    """Per-category counts of points on a dyadic lattice, at every resolution (:func:`build_pyramid`).

    Attributes
    ----------
    levels : tuple of arrays of shape (rows, cols, categories)
        Level 0 is the base; level ``l`` has cells ``2**l`` base cells on a side. Arrays in memory (NumPy or CuPy)
        or Zarr arrays on disk (:func:`open_pyramid`); uint32 counts (uint64 from 2**32 points).
    origin : tuple of float
        ``(x, y)`` of the lattice's lower-left corner, a multiple of ``cell``.
    cell : float
        Side of a base cell, a power of two.
    categories : tuple of str
    count : int
        Points counted (finite, with a category).
    bounds : tuple of float
        ``(x0, x1, y0, y1)`` of those points.
    path : Path or None
        Where the pyramid is stored.
    """

    levels: tuple
    origin: tuple[float, float]
    cell: float
    categories: tuple[str, ...]
    count: int
    bounds: tuple[float, float, float, float]
    path: Path | None = None
    _tiles: Memo = field(default_factory=lambda: Memo(max_items=TILE_CACHE, name="decompressed pyramid chunks"),
                         repr=False)

    def cell_of(self, level: int) -> float:
        """Side of a cell of ``level``."""
        return self.cell * 2.0**level

    @property
    def nbytes(self) -> int:
        """Bytes of the levels uncompressed (in memory)."""
        return int(sum(math.prod(a.shape) * np.dtype(a.dtype).itemsize for a in self.levels))

    def disk_bytes(self) -> int:
        """Bytes the stored pyramid takes on disk (0 when it is not stored)."""
        if self.path is None:
            return 0
        return sum(p.stat().st_size for p in Path(self.path).rglob("*") if p.is_file())

    def snap(self, x_range, y_range, width: int, height: int) -> PyramidView | None:
        """The view of ``width x height`` pixels over ``x_range x y_range`` on this lattice, or None when a level
        cannot serve it: a pixel finer than the base cell along either axis (read the points), an empty view, or
        more than :data:`MAX_CELLS_PER_PIXEL` level cells per pixel.

        Each axis's pixel side becomes ``cell * 2**k`` with ``k`` the nearest whole power; the ranges move out to
        pixel edges, so the snapped view covers the asked one, with up to 1.41 times the pixels per side.
        """
        (x0, x1), (y0, y1) = (float(v) for v in x_range), (float(v) for v in y_range)
        if not (width > 0 and height > 0 and x1 > x0 and y1 > y0 and all(map(math.isfinite, (x0, x1, y0, y1)))):
            return None
        kx = round(math.log2((x1 - x0) / width / self.cell))
        ky = round(math.log2((y1 - y0) / height / self.cell))
        if min(kx, ky) < 0:
            return None
        level = min(kx, ky, len(self.levels) - 1)
        mx, my = 2 ** (kx - level), 2 ** (ky - level)
        if mx * my > MAX_CELLS_PER_PIXEL:
            return None
        ox, oy = self.origin
        px, py = self.cell * 2.0**kx, self.cell * 2.0**ky
        col0, row0 = math.floor((x0 - ox) / px), math.floor((y0 - oy) / py)
        cols, rows = math.ceil((x1 - ox) / px) - col0, math.ceil((y1 - oy) / py) - row0
        return PyramidView(level, mx, my, col0, row0, cols, rows, (ox + col0 * px, ox + (col0 + cols) * px),
                           (oy + row0 * py, oy + (row0 + rows) * py))

    def serves(self, x_range, y_range, width: int, height: int, index=None) -> PyramidView | None:
        """The snapped view (:meth:`snap`) when drawing it from this pyramid reads less than drawing it from the
        points of ``index`` (a :class:`~engine.render.PointIndex` of the same points) would: its cells times the
        categories against the points in the cells of the index it overlaps. Without ``index``, whenever the
        pyramid can serve it. A view of a quarter of ten million points, for one, is faster from its points."""
        view = self.snap(x_range, y_range, width, height)
        if view is None or index is None:
            return view
        return view if index.count_in(x_range, y_range) > view.cells(len(self.categories)) else None

    def counts(self, view: PyramidView, xp=np):
        """Per-category counts of the pixels of ``view``: an ``xp`` array of shape (height, width, categories),
        rows from the bottom (datashader's ``count_cat`` of the snapped view). Reads only the level's cells the view
        overlaps; cells beyond the lattice count 0."""
        level = self.levels[view.level]
        rows, cols = level.shape[0], level.shape[1]
        r0, c0 = view.row0 * view.my, view.col0 * view.mx
        r1, c1 = r0 + view.height * view.my, c0 + view.width * view.mx
        k = len(self.categories)
        dtype = np.uint32 if self.count < 2**32 else np.uint64  # (a stored level may hold uint16)
        out = xp.zeros((r1 - r0, c1 - c0, k), dtype)
        rr0, rr1, cc0, cc1 = max(r0, 0), min(r1, rows), max(c0, 0), min(c1, cols)
        if rr1 > rr0 and cc1 > cc0:
            self._read(view.level, rr0, rr1, cc0, cc1, out[rr0 - r0:rr1 - r0, cc0 - c0:cc1 - c0], xp)
        if view.mx > 1 or view.my > 1:
            out = out.reshape(view.height, view.my, view.width, view.mx, k).sum(axis=(1, 3), dtype=dtype)
        return out


    def _read(self, index: int, r0: int, r1: int, c0: int, c1: int, out, xp):
        """Copy the cells ``[r0:r1, c0:c1]`` of level ``index`` into ``out``: from memory, or chunk by chunk from
        the store through the cache of decompressed chunks."""
        level = self.levels[index]
        chunks = getattr(level, "chunks", None)
        if self.path is None or chunks is None:
            out[...] = xp.asarray(level[r0:r1, c0:c1])
            return
        ch, cw = chunks[0], chunks[1]
        for tr in range(r0 // ch, (r1 - 1) // ch + 1):
            for tc in range(c0 // cw, (c1 - 1) // cw + 1):
                tile = self._tiles.get((index, tr, tc), lambda tr=tr, tc=tc: level[tr * ch:(tr + 1) * ch,
                                                                                     tc * cw:(tc + 1) * cw])
                a0, a1 = max(r0, tr * ch), min(r1, (tr + 1) * ch)
                b0, b1 = max(c0, tc * cw), min(c1, (tc + 1) * cw)
                out[a0 - r0:a1 - r0, b0 - c0:b1 - c0] = xp.asarray(tile[a0 - tr * ch:a1 - tr * ch,
                                                                         b0 - tc * cw:b1 - tc * cw])


@numba.njit(cache=True, nogil=True, parallel=True)
def _colour_sums(counts, table, out):
    """Per pixel of ``counts`` (rows, cols, categories): the total and the sums of the categories' colours into
    ``out`` (rows, cols, 4); returns the smallest count of any category in any pixel and the smallest total. Rows
    in parallel; at least one row."""
    lows = np.empty(counts.shape[0], np.int64)
    low_totals = np.empty(counts.shape[0], np.int64)
    for i in numba.prange(counts.shape[0]):
        low, low_total = np.iinfo(np.int64).max, np.iinfo(np.int64).max
        for j in range(counts.shape[1]):
            total, r, g, b = 0, 0, 0, 0
            for c in range(counts.shape[2]):
                v = np.int64(counts[i, j, c])
                total += v
                r += v * table[c, 0]
                g += v * table[c, 1]
                b += v * table[c, 2]
                low = min(low, v)
            out[i, j, 0], out[i, j, 1], out[i, j, 2], out[i, j, 3] = total, r, g, b
            low_total = min(low_total, total)
        lows[i], low_totals[i] = low, low_total
    return lows.min(), low_totals.min()


@numba.njit(cache=True, nogil=True)
def _extent(x, y, codes, ncat, acc):
    """Fold the finite points with a category into ``acc`` = [x0, x1, y0, y1, count]."""
    for i in range(x.shape[0]):
        c = codes[i]
        if c >= 0 and c < ncat and np.isfinite(x[i]) and np.isfinite(y[i]):
            acc[0], acc[1] = min(acc[0], x[i]), max(acc[1], x[i])
            acc[2], acc[3] = min(acc[2], y[i]), max(acc[3], y[i])
            acc[4] += 1


@numba.njit(cache=True, nogil=True)
def _count(x, y, codes, ncat, ox, oy, inverse, out):
    """Add each finite point with a category to its cell of ``out`` (rows, cols, categories)."""
    rows, cols = out.shape[0], out.shape[1]
    for i in range(x.shape[0]):
        c = codes[i]
        if c >= 0 and c < ncat and np.isfinite(x[i]) and np.isfinite(y[i]):
            col = int(math.floor((x[i] - ox) * inverse))
            row = int(math.floor((y[i] - oy) * inverse))
            if 0 <= col < cols and 0 <= row < rows:
                out[row, col, c] += 1


def _cells(xp, x, y, codes, ncat, ox, oy, inverse, shape):
    """Flat cell-and-category index of each counted point (the GPU path's scatter), -1 for the others."""
    keep = (codes >= 0) & (codes < ncat) & xp.isfinite(x) & xp.isfinite(y)
    col = xp.floor((x.astype(xp.float64) - ox) * inverse).astype(xp.int64)
    row = xp.floor((y.astype(xp.float64) - oy) * inverse).astype(xp.int64)
    keep &= (col >= 0) & (col < shape[1]) & (row >= 0) & (row < shape[0])
    return ((row * shape[1] + col) * ncat + codes.astype(xp.int64))[keep]


def _rows(array, start: int, stop: int, column: int | None, xp):
    part = array[start:stop] if column is None else array[start:stop, column]
    if hasattr(part, "compute"):  # a Dask array
        part = part.compute()
    return part if get_namespace(part) is xp else xp.asarray(to_numpy(part))


def _lattice(bounds, base: int, ncat: int, max_bytes: int, itemsize: int) -> tuple[float, tuple, tuple]:
    """Cell side, origin and level-0 shape for points within ``bounds``: the finest power-of-two cell with at most
    ``base`` cells across the larger span, coarsened until level 0 fits ``max_bytes``."""
    x0, x1, y0, y1 = bounds
    span = max(x1 - x0, y1 - y0)
    if not span > 0:  # one point, or all on one spot: any small cell
        span = max(abs(x0), abs(y0), 1.0) * 2.0**-20
    cell = 2.0 ** math.ceil(math.log2(span / base))
    while True:
        ox, oy = math.floor(x0 / cell) * cell, math.floor(y0 / cell) * cell
        shape = (math.floor((y1 - oy) / cell) + 1, math.floor((x1 - ox) / cell) + 1)
        if shape[0] * shape[1] * ncat * itemsize <= max_bytes or max(shape) <= 1:
            return cell, (ox, oy), shape
        cell *= 2.0


def _coarser(xp, level):
    """The next level: sums of 2 x 2 cells (an odd last row or column summed alone), from four strided views, so
    that no copy of ``level`` is made (level 0 is the largest array of a build)."""
    rows, cols, k = level.shape
    out = xp.zeros(((rows + 1) // 2, (cols + 1) // 2, k), level.dtype)
    for dr in (0, 1):
        for dc in (0, 1):
            part = level[dr::2, dc::2]
            out[:part.shape[0], :part.shape[1]] += part
    return out


def build_pyramid(x, y, codes, categories, *, base: int = BASE, chunk: int = CHUNK, bounds=None,
                  max_bytes: int = 2**30, xp=np, progress=None) -> Pyramid:
    """Count the points of each category in every cell of a dyadic lattice, at every resolution.

    Parameters
    ----------
    x, y : sliceable arrays of shape (n,), or ``x`` of shape (n, 2) and ``y`` None
        Coordinates: NumPy arrays, memory maps, Zarr or Dask arrays, read ``chunk`` rows at a time.
    codes : sliceable array of shape (n,), integer
        Category of each point; codes outside ``[0, len(categories))`` (pandas' -1) and non-finite coordinates
        are left out, as datashader leaves them.
    categories : sequence of str
    base : int, default=4096
        Cells across the larger span of the points at level 0, at most.
    chunk : int, default=4,000,000
        Rows read at once.
    bounds : tuple of float, optional
        ``(x0, x1, y0, y1)`` of the counted points when known; else found in a first pass.
    max_bytes : int, default=1 GiB
        Level 0's size at most: the cell is coarsened until it fits (many categories, a long thin span).
    xp : module, default numpy
        ``numpy``, or ``cupy`` to count and sum on the GPU.
    progress : callable, optional
        ``progress(done, total)`` in rows, after each chunk of the counting pass.

    Returns
    -------
    Pyramid
        In memory; :func:`save_pyramid` stores it.

    Raises
    ------
    RenderError
        Arrays of different lengths, no categories, non-integer codes, or no point to count.

    Examples
    --------
    >>> p = build_pyramid(np.array([0.0, 1.0, 1.0]), np.array([0.0, 1.0, 1.0]), np.array([0, 1, 1]), ["a", "b"])
    >>> p.count, int(p.levels[-1].sum())
    (3, 3)
    """
    column = None
    if y is None:
        if len(x.shape) != 2 or x.shape[1] != 2:
            raise RenderError(f"build_pyramid needs x of shape (n, 2) when y is None, got shape {tuple(x.shape)}.")
        n, column = int(x.shape[0]), 0
    else:
        n = int(x.shape[0])
        if len(x.shape) != 1 or tuple(y.shape) != (n,):
            raise RenderError(f"build_pyramid needs x and y of one length, got shapes {tuple(x.shape)} and "
                              f"{tuple(y.shape)}.")
    if tuple(codes.shape) != (n,):
        raise RenderError(f"build_pyramid needs one category code per point ({n:,}), got shape {tuple(codes.shape)}.")
    if np.dtype(codes.dtype).kind not in "iu":
        raise RenderError(f"build_pyramid needs integer category codes, got dtype {codes.dtype}.")
    categories = tuple(str(c) for c in categories)
    if not categories:
        raise RenderError("build_pyramid needs at least one category.")
    ncat = len(categories)

    def read(start):
        stop = min(start + chunk, n)
        xs = _rows(x, start, stop, column, xp)
        ys = _rows(x, start, stop, 1, xp) if column is not None else _rows(y, start, stop, None, xp)
        return xs, ys, _rows(codes, start, stop, None, xp)

    count = None
    if bounds is None:
        acc = np.array([np.inf, -np.inf, np.inf, -np.inf, 0.0])
        for start in range(0, n, chunk):
            xs, ys, cs = (to_numpy(a) for a in read(start))
            _extent(xs, ys, cs, ncat, acc)
        if acc[4] == 0:
            raise RenderError(f"build_pyramid: none of the {n:,} points has finite coordinates and a category.")
        bounds, count = tuple(float(v) for v in acc[:4]), int(acc[4])
    bounds = tuple(float(v) for v in bounds)
    dtype = np.uint32 if n < 2**32 else np.uint64
    cell, origin, shape = _lattice(bounds, int(base), ncat, int(max_bytes), np.dtype(dtype).itemsize)
    grid = xp.zeros((*shape, ncat), dtype)
    inverse = 1.0 / cell  # a power of two: (x - origin) * inverse is exact
    counted = 0
    for start in range(0, n, chunk):
        xs, ys, cs = read(start)
        if xp is np:
            _count(xs, ys, cs, ncat, origin[0], origin[1], inverse, grid)
        else:
            import cupyx

            flat = _cells(xp, xs, ys, cs, ncat, origin[0], origin[1], inverse, shape)
            cupyx.scatter_add(grid.reshape(-1), flat, xp.ones(flat.shape, dtype))
            counted += int(flat.shape[0])
        if progress is not None:
            progress(min(start + chunk, n), n)
    levels = [grid]
    while max(levels[-1].shape[:2]) > 1:
        levels.append(_coarser(xp, levels[-1]))
    total = int(levels[-1].sum())
    if count is not None and total != count:  # bounds found here: every counted point is inside the lattice
        raise RenderError(f"build_pyramid counted {total:,} points of {count:,}: the lattice missed some.")
    return Pyramid(tuple(levels), origin, cell, categories, total, bounds)


def save_pyramid(pyramid: Pyramid, path) -> Pyramid:
    """Store ``pyramid`` as a Zarr group at ``path`` (replaced); returns the stored pyramid, read from there.

    Written at a temporary name beside ``path`` and renamed into place once complete
    (:func:`engine.data.files.atomic_path`): a kill at any moment, or a disk that fills up, leaves at ``path`` the
    old store whole or the new one whole, never a store with chunks missing (which Zarr would read as zeros), and a
    failed write leaves no temporary behind.
    """
    path = Path(path)
    remove_dead_temporaries(path)  # a killed save's store
    with atomic_path(path) as tmp:
        _write_pyramid(pyramid, tmp)
    return open_pyramid(path)


def _write_pyramid(pyramid: Pyramid, folder: Path) -> None:
    import zarr
    from zarr.codecs import BloscCodec

    group = zarr.open_group(str(folder), mode="w")
    group.attrs["pyramid"] = json.dumps({
        "format": _FORMAT, "origin": list(pyramid.origin), "cell": pyramid.cell,
        "categories": list(pyramid.categories), "count": pyramid.count, "bounds": list(pyramid.bounds),
        "levels": len(pyramid.levels),
    })
    for i, level in enumerate(pyramid.levels):
        shape = tuple(int(s) for s in level.shape)
        level = to_numpy(level)
        if level.size and int(level.max()) < 2**16:  # half the bytes to read back (read into uint32)
            level = level.astype(np.uint16)
        # lz4 with byte shuffling: a 960 x 960 view reads in 40 ms where zstd's default takes 230 ms, at 1.7 times
        # the size (mostly empty chunks are not written either way)
        array = group.create_array(f"level_{i}", shape=shape, dtype=level.dtype, fill_value=0,
                                   chunks=(min(_ZARR_CHUNK, shape[0]), min(_ZARR_CHUNK, shape[1]), shape[2]),
                                   compressors=BloscCodec(cname="lz4", clevel=1, shuffle="shuffle"))
        array[...] = level


def open_pyramid(path) -> Pyramid:
    """The pyramid stored at ``path`` (:func:`save_pyramid`), its levels read lazily from disk.

    Raises
    ------
    RenderError
        ``path`` holds no pyramid of this format.
    """
    import zarr

    path = Path(path)
    try:
        group = zarr.open_group(str(path), mode="r")
        meta = json.loads(group.attrs["pyramid"])
        if meta.get("format") != _FORMAT:
            raise ValueError(f"format {meta.get('format')!r}")
        levels = tuple(group[f"level_{i}"] for i in range(int(meta["levels"])))
    except Exception as exc:
        raise RenderError(f"{path} holds no pyramid of counts ({_FORMAT}): {exc}") from None
    return Pyramid(levels, tuple(meta["origin"]), float(meta["cell"]), tuple(meta["categories"]), int(meta["count"]),
                   tuple(meta["bounds"]), path)


def aggregate_pyramid(pyramid: Pyramid, view: PyramidView, *, colors=None, xp=np):
    """Stage 1 from the pyramid: the :func:`~engine.render.aggregate_colors` aggregate of a snapped ``view``
    (per pixel the number of points and the sum of their category colours, ``category_min`` in its attrs), ready
    for :func:`~engine.render.shade_colors`.

    Parameters
    ----------
    pyramid : Pyramid
    view : PyramidView
        From :meth:`Pyramid.snap`.
    colors : dict, optional
        Category -> colour (default :func:`~engine.render.color_key` of the categories).
    xp : module, default numpy

    Returns
    -------
    xarray.DataArray of shape (view.height, view.width, 4)
        As :func:`~engine.render.aggregate_colors` returns it, over the snapped ranges (NumPy data).

    Raises
    ------
    RenderError
        A category without a colour.
    """
    from engine.render.bins import color_table, colour_aggregate

    table = color_table(pyramid.categories, colors, "aggregate_pyramid")
    counts = pyramid.counts(view, xp)
    dtype = np.uint32 if pyramid.count * 255 < 2**32 else np.uint64
    height, width, k = counts.shape
    if xp is np:
        out = np.empty((height, width, 4), dtype)
        low, low_total = _colour_sums(counts, table, out) if height and width else (0, 0)
    else:  # on the GPU: one matrix product, exact in float64 below 2**53 per pixel
        flat = counts.reshape(-1, k).astype(xp.float64)
        sums = flat @ xp.asarray(np.hstack([np.ones((k, 1)), table]).astype(np.float64))
        out = sums.reshape(height, width, 4).astype(dtype)
        low, low_total = int(counts.min()), int(out[..., 0].min())
    category_min = int(low) if height and width and int(low_total) >= k else 0
    return colour_aggregate(to_numpy(out), view.x_range, view.y_range, table, category_min)
