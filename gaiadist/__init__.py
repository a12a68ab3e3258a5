"""gaiadist: distances from Gaia DR3 parallaxes.

Public names:

- `apply_zeropoint`: Lindegren et al. (2021) parallax zero point.
- `StarDistance`: posterior distance of every star under a distance prior.
- `ClusterDistance`: distance, size and members of a star cluster.
- `EDSD`, `GeneralizedGamma`: distance priors as NumPyro distributions.
"""

from .cluster import ClusterDistance, ClusterFit
from .exceptions import GaiadistError, GaiadistWarning, InputError
from .priors import EDSD, GeneralizedGamma
from .stars import DistanceFlag, StarDistance
from .zeropoint import apply_zeropoint

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
    "StarDistance",
    "apply_zeropoint",
]
