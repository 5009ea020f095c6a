"""Scale-out: 100M rows end to end on a Dask LocalCluster of 2 workers against 10M in one process (benchmarks.scale).

Only in full runs and ``--only scale``; ``--quick --only scale`` runs 1M against 100k rows.
"""

from benchmarks.scale import run

__all__ = ["run"]
