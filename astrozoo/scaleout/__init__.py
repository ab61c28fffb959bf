"""Scale-out: survey-scale inference over partitions of a catalogue, on Dask and LSDB.

``partitions`` cuts a catalogue by survey-image tile and sky region (torch-free); ``dask`` runs
the partitions on a Dask cluster with one model per worker and atomic per-partition Parquet
files (the ``dask`` extra); ``lsdb`` runs a model over an LSDB/HATS catalogue partition by
partition and returns an LSDB catalogue (the ``lsdb`` extra).
"""

from .partitions import Partition, partition_catalog

__all__ = ["Partition", "partition_catalog"]
