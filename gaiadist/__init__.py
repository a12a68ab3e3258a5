"""gaiadist: distances from Gaia DR3 parallaxes.

Public names:

- `query_cone`: Gaia DR3 cone search by TAP, cached on disk.
- `read_gaia`: a local Gaia table (FITS, VOTable, ECSV, CSV, Parquet).
- `apply_zeropoint`: Lindegren et al. (2021) parallax zero point
  (`ZeroPointFlag`: why a source is outside its calibration).
- `StarDistance`: posterior distance of every star under a distance prior.
- `ClusterDistance`: distance, size and members of a star cluster.
- `survey`: `ClusterDistance` over a catalogue of clusters, locally or on Dask.
- `bulk_star_distances`: `StarDistance` over many large files, to Parquet.
- `EDSD`, `GeneralizedGamma`: distance priors as NumPyro distributions.
- `use_compilation_cache`: keep compiled programs on disk for later processes.
"""

from .bulk import bulk_star_distances
from .cluster import ClusterDistance, ClusterFit
from .columns import read_gaia
from .compilation import use_compilation_cache
from .exceptions import GaiadistError, GaiadistWarning, InputError, ServiceError
from .priors import EDSD, GeneralizedGamma
from .query import query_cone
from .stars import DistanceFlag, StarDistance
from .surveys import survey
from .zeropoint import ZeroPointFlag, apply_zeropoint

try:
    from ._version import version as __version__
except ImportError:  # not installed: running from a bare source tree
    __version__ = "0.0.0"

__all__ = [
    "ClusterDistance",
    "ClusterFit",
    "DistanceFlag",
    "EDSD",
    "GaiadistError",
    "GaiadistWarning",
    "GeneralizedGamma",
    "InputError",
    "ServiceError",
    "StarDistance",
    "ZeroPointFlag",
    "apply_zeropoint",
    "bulk_star_distances",
    "query_cone",
    "read_gaia",
    "survey",
    "use_compilation_cache",
]
