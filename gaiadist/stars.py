"""Posterior distances of individual stars: `StarDistance`."""

from __future__ import annotations

import enum
import warnings

import astropy.units as u
import jax
import numpy as np
import numpyro
import numpyro.distributions as dist
from astropy.table import Table
from numpyro.infer import MCMC, NUTS

from .bj21 import bj21_prior, bj21_prior_table
from .columns import column_values, quantity_values, read_table
from .exceptions import GaiadistWarning, InputError
from .posterior import SIGMA_PROBS, distance_quantiles
from .priors import EDSD, GeneralizedGamma
from .provenance import record
from .zeropoint import apply_zeropoint

__all__ = ["StarDistance", "DistanceFlag"]

_METHODS = ("quadrature", "nuts")

#: Length scale of the EDSD and generalised gamma priors when none is given.
DEFAULT_LENGTH = 1.35 * u.kpc


class DistanceFlag(enum.IntFlag):
    """Bits of the ``r_flag`` column: why a star has no distance (0 = fine)."""

    OK = 0
    #: Parallax is NaN, infinite or masked.
    NO_PARALLAX = 1
    #: Parallax error is NaN, infinite, masked, zero or negative.
    BAD_ERROR = 2
    #: The star's own prior length scale (from a column) is not positive.
    BAD_PRIOR = 4
    #: Outside the selection the cluster fit was given (``parallax_range``).
    EXCLUDED = 8
    #: ``prior="bj21"``: no usable ``source_id`` to find the prior's pixel.
    NO_PIXEL = 16


class StarDistance:
    """Posterior distance of every star from its parallax and a distance prior.

    The posterior of each star's distance ``r`` (pc) is

    ``p(r | plx) ∝ Normal(plx | 1000 / r, err) * prior(r)``,

    with ``plx`` the zero-point corrected parallax and ``err`` its error (mas).
    It is one-dimensional, so by default it is computed, not sampled: an
    adaptive grid per star gives the percentiles to better than 1e-4 relative
    accuracy for stars of any signal-to-noise, negative parallaxes included.

    Parameters
    ----------
    prior : {"edsd", "ggd", "bj21"} or `~gaiadist.GeneralizedGamma`, optional
        ``"edsd"``: exponentially decreasing space density,
        ``p(r) ∝ r^2 exp(-r/L)`` (Bailer-Jones 2015). ``"ggd"``: generalised
        gamma, ``p(r) ∝ r^beta exp(-(r/L)^alpha)`` (Bailer-Jones et al. 2021).
        ``"bj21"``: the generalised gamma prior of Bailer-Jones et al.'s
        (2021) geometric distances, its parameters those of the source's
        HEALPix level-5 pixel, found from ``source_id`` (see
        :mod:`gaiadist.bj21` and the notes below). An `~gaiadist.EDSD` or
        `~gaiadist.GeneralizedGamma` instance with scalar parameters is also
        accepted; its ``length_scale`` is in pc.
    length_scale : `~astropy.units.Quantity` or str, optional
        Prior length scale ``L``: a length, one per star, or the name of a
        table column holding it (a column without a unit is taken in pc).
        Plain numbers are refused: give the unit. Default 1.35 kpc; not with
        ``prior="bj21"``, whose length scales come from its table.
    alpha, beta : float, optional
        Generalised gamma shape parameters (only with ``prior="ggd"``).
    method : {"quadrature", "nuts"}, optional
        ``"quadrature"`` (default) computes the percentiles on a grid; ``"nuts"``
        samples each star with NumPyro's NUTS, one star at a time, as an
        independent cross-check (slow: use it on a handful of stars).
    chunk_size : int, optional
        Stars computed together by the quadrature; bounds memory (about 10 kB
        per star, so about 80 MB at the default).

    Notes
    -----
    With ``prior="bj21"`` the result is Bailer-Jones et al.'s (2021)
    geometric distance: ``r_med``, ``r_lo`` and ``r_hi`` are their
    ``r_med_geo``, ``r_lo_geo`` and ``r_hi_geo`` (the 50th, 15.87th and
    84.13th percentiles). The parallax is ``parallax_corrected`` where the
    table has it (a zero point of the user's choice); otherwise the zero
    point is applied as they did (`~gaiadist.apply_zeropoint`: Lindegren et
    al. 2021 where it can be computed, -0.017 mas where it cannot) and its
    columns are added to the output. Where the table lacks the zero point's
    input columns, every source gets -0.017 mas. Results can differ from the
    catalogue's where the parallax or its zero point differs (DR3 and EDR3
    astrometry are identical), and by the quadrature's accuracy (about 1e-4
    relative, in JAX's float32) against the catalogue's own sampling.

    Examples
    --------
    >>> import astropy.units as u
    >>> from astropy.table import QTable
    >>> from gaiadist import StarDistance
    >>> stars = QTable({"parallax": [1.0, 0.2] * u.mas,
    ...                 "parallax_error": [0.1, 0.3] * u.mas})
    >>> out = StarDistance(length_scale=1.35 * u.kpc).fit(stars)  # doctest: +SKIP
    >>> out["r_med"]  # doctest: +SKIP
    """

    def __init__(
        self,
        prior: str | GeneralizedGamma = "edsd",
        length_scale: u.Quantity | str | None = None,
        *,
        alpha: float | None = None,
        beta: float | None = None,
        method: str = "quadrature",
        chunk_size: int = 8192,
    ) -> None:
        if method not in _METHODS:
            raise InputError(f"method must be one of {_METHODS}, got {method!r}")
        self.method = method
        self.chunk_size = int(chunk_size)
        if prior == "bj21":
            if alpha is not None or beta is not None or length_scale is not None:
                raise InputError(
                    "prior='bj21' takes alpha, beta and length_scale from its "
                    "table of HEALPix pixels; do not give them"
                )
            self.prior, self.alpha, self.beta = "bj21", None, None
            self.length_scale, self._length_pc = None, None
            return
        self.length_scale = DEFAULT_LENGTH if length_scale is None else length_scale
        if isinstance(prior, GeneralizedGamma):
            if alpha is not None or beta is not None:
                raise InputError("give alpha and beta through the prior object")
            self.prior = "edsd" if isinstance(prior, EDSD) else "ggd"
            self.alpha = float(prior.alpha)
            self.beta = float(prior.beta)
            self.length_scale = float(prior.length_scale) * u.pc
        elif prior == "edsd":
            if alpha is not None or beta is not None:
                raise InputError("alpha and beta apply to prior='ggd', not 'edsd'")
            self.prior, self.alpha, self.beta = "edsd", 1.0, 2.0
        elif prior == "ggd":
            if alpha is None or beta is None:
                raise InputError("prior='ggd' needs both alpha and beta")
            self.prior, self.alpha, self.beta = "ggd", float(alpha), float(beta)
        else:
            raise InputError(
                "prior must be 'edsd', 'ggd', 'bj21' or a GeneralizedGamma, "
                f"got {prior!r}"
            )
        if not self.alpha > 0:
            raise InputError(f"alpha must be positive, got {self.alpha}")
        if not self.beta > -1:
            raise InputError(f"beta must be greater than -1, got {self.beta}")
        # The length scale in pc, converted once; None when it names a column.
        self._length_pc = None
        if not isinstance(self.length_scale, str):
            values = quantity_values(self.length_scale, u.pc, "length_scale")
            if values.ndim > 1:
                raise InputError("length_scale must be a scalar or one value per star")
            if values.ndim == 0 and not (np.isfinite(values) and values > 0):
                raise InputError(
                    f"length_scale must be a positive length, got {length_scale}"
                )
            self._length_pc = values

    def fit(
        self,
        table: Table | str,
        *,
        seed: int = 0,
        num_warmup: int = 1000,
        num_samples: int = 2000,
        progress: bool | None = False,
    ) -> Table:
        """Compute the posterior distance of every star.

        Parameters
        ----------
        table : `~astropy.table.Table`, `~astropy.table.QTable` or str
            Gaia sources (or a file to read them from) with ``parallax_error``
            and ``parallax_corrected`` (from `~gaiadist.apply_zeropoint`) or,
            failing that, ``parallax``. Columns without units are taken in mas.
        seed : int, optional
            Random seed for ``method="nuts"`` (the quadrature is deterministic).
        num_warmup, num_samples : int, optional
            NUTS settings per star for ``method="nuts"``.
        progress : bool or None, optional
            Show a progress bar over the table (the quadrature works through
            it ``chunk_size`` stars at a time); ``None`` shows it only when
            standard error is a terminal.

        Returns
        -------
        table : `~astropy.table.Table` or `~astropy.table.QTable`
            A copy of the input, every row and column in order, with ``r_med``,
            ``r_lo`` and ``r_hi`` (the 50th, 15.87th and 84.13th percentiles of
            the posterior distance, in pc) and ``r_flag`` (`DistanceFlag` bits;
            rows with a non-zero flag have NaN distances).

        Raises
        ------
        InputError
            If the table is empty, a needed column is missing, or a column has
            a unit that is not an angle.
        """
        table = read_table(table)
        zero_point = "from the input's parallax_corrected"
        if self.prior == "bj21" and "parallax_corrected" not in table.colnames:
            table = apply_zeropoint(table, missing_inputs="global")
            zero_point = "applied as Bailer-Jones et al. (2021) did"
        plx_name, plx, err, flag = parallax_inputs(table)
        if self.prior == "bj21":
            prior = _bj21_values(table)
            alpha, beta, length = prior["alpha"], prior["beta"], prior["length_scale"]
            flag[~prior["ok"]] |= np.uint8(DistanceFlag.NO_PIXEL)
        else:
            alpha, beta = self.alpha, self.beta
            length = self._length_scale_values(table)
            with np.errstate(invalid="ignore"):
                bad_prior = ~(np.isfinite(length) & (length > 0))
            flag[bad_prior] |= np.uint8(DistanceFlag.BAD_PRIOR)
        usable = flag == 0
        _warn_flagged(flag)
        alpha, beta, length = (
            np.broadcast_to(x, (len(table),))[usable] for x in (alpha, beta, length)
        )

        quantiles = np.full((len(table), 3), np.nan)
        if self.method == "quadrature":
            quantiles[usable] = distance_quantiles(
                plx[usable],
                err[usable],
                alpha=alpha,
                beta=beta,
                length_scale=length,
                chunk_size=self.chunk_size,
                progress=progress,
            )
        elif np.any(usable):
            quantiles[usable] = _nuts_quantiles(
                plx[usable],
                err[usable],
                alpha,
                beta,
                length,
                seed=seed,
                num_warmup=num_warmup,
                num_samples=num_samples,
            )

        out = table.copy()
        add_distance_columns(
            out,
            quantiles,
            flag,
            median="median of the posterior distance",
            flag_zero="distance computed",
            fmt=".7g",  # the percentiles' accuracy, ~1e-5
        )
        if self.prior == "bj21":
            settings = {
                "prior": "bj21",
                "prior_table": bj21_prior_table().meta["citation"],
                "zero_point": zero_point,
            }
        else:
            settings = {
                "prior": self.prior,
                "alpha": self.alpha,
                "beta": self.beta,
                "length_scale_pc": self._describe_length_scale(),
            }
        settings.update(
            parallax_column=plx_name,
            method=self.method,
            percentiles=[100 * p for p in SIGMA_PROBS],
        )
        if self.method == "nuts":
            settings.update(seed=seed, num_warmup=num_warmup, num_samples=num_samples)
        record(out, "star_distance", settings)
        return out

    def _describe_length_scale(self) -> float | str:
        """The length scale in pc, or where the per-star values came from."""
        if self._length_pc is None:
            return f"column {self.length_scale!r}"
        if self._length_pc.ndim == 0:
            return self._length_pc.item()
        return "one value per star"

    def _length_scale_values(self, table: Table) -> np.ndarray:
        """Length scale in pc for every row of ``table``."""
        if self._length_pc is None:
            return column_values(table, self.length_scale, u.pc)
        if self._length_pc.ndim == 1 and self._length_pc.shape[0] != len(table):
            raise InputError(
                f"length_scale has {self._length_pc.shape[0]} values but the table "
                f"has {len(table)} rows"
            )
        return np.broadcast_to(self._length_pc, (len(table),))


def parallax_inputs(table: Table) -> tuple[str, np.ndarray, np.ndarray, np.ndarray]:
    """Parallaxes and errors (mas) of ``table``, with the rows' flags.

    Uses ``parallax_corrected`` when present; otherwise ``parallax``, with a
    warning that no zero point was applied (attributed to the caller of the
    public ``fit`` method).

    Returns
    -------
    name : str
        The parallax column used.
    plx, err : `numpy.ndarray`
        Parallax and error in mas (NaN where masked).
    flag : `numpy.ndarray`
        uint8 `DistanceFlag` bits: NO_PARALLAX and BAD_ERROR.
    """
    name = "parallax_corrected"
    if name not in table.colnames:
        name = "parallax"
        warnings.warn(
            "the table has no 'parallax_corrected' column, so no parallax "
            "zero point was applied; run gaiadist.apply_zeropoint first to "
            "correct it",
            GaiadistWarning,
            stacklevel=3,
        )
    plx = column_values(table, name, u.mas)
    err = column_values(table, "parallax_error", u.mas)
    with np.errstate(invalid="ignore"):
        flag = (
            DistanceFlag.NO_PARALLAX * ~np.isfinite(plx)
            | DistanceFlag.BAD_ERROR * ~(np.isfinite(err) & (err > 0))
        ).astype(np.uint8)
    return name, plx, err, flag


def add_distance_columns(
    out: Table,
    quantiles: np.ndarray,
    flag: np.ndarray,
    *,
    median: str,
    flag_zero: str,
    fmt: str,
) -> None:
    """Append ``r_med``, ``r_lo``, ``r_hi`` (pc) and ``r_flag`` to ``out``.

    Parameters
    ----------
    out : `~astropy.table.Table`
        The output table, changed in place.
    quantiles : `numpy.ndarray`
        Shape ``(len(out), 3)``: the `SIGMA_PROBS` percentiles in pc.
    flag : `numpy.ndarray`
        `DistanceFlag` bits of each row.
    median : str
        Description of ``r_med``.
    flag_zero : str
        What a zero ``r_flag`` means, for its description.
    fmt : str
        Display format of the three distance columns.
    """
    for name, column, text in (
        ("r_med", 1, median),
        ("r_lo", 0, "15.87th percentile of the posterior distance"),
        ("r_hi", 2, "84.13th percentile of the posterior distance"),
    ):
        out[name] = quantiles[:, column] * u.pc
        out[name].info.description = text
        out[name].info.format = fmt
    out["r_flag"] = flag
    out["r_flag"].info.description = f"gaiadist.DistanceFlag bits; 0 = {flag_zero}"


def _warn_flagged(flag: np.ndarray) -> None:
    total = len(flag)
    # Rows left out on purpose (a selection) are not a problem of the data.
    flag = flag[(flag & DistanceFlag.EXCLUDED) == 0]
    n_bad = int(np.count_nonzero(flag))
    if n_bad == 0:
        return
    reasons = [
        f"{int(np.count_nonzero(flag & bit))} {text}"
        for bit, text in (
            (DistanceFlag.NO_PARALLAX, "without a finite parallax"),
            (DistanceFlag.BAD_ERROR, "without a positive, finite parallax_error"),
            (DistanceFlag.BAD_PRIOR, "without a positive length scale"),
            (DistanceFlag.NO_PIXEL, "without a source_id to find the prior's pixel"),
        )
        if np.any(flag & bit)
    ]
    warnings.warn(
        f"{n_bad} of {total} rows cannot be used ({', '.join(reasons)}); "
        "their distances are NaN and r_flag says why",
        GaiadistWarning,
        stacklevel=3,
    )


def _bj21_values(table: Table) -> dict[str, np.ndarray]:
    """The Bailer-Jones et al. (2021) prior of every row, from ``source_id``."""
    if "source_id" not in table.colnames:
        raise InputError(
            "prior='bj21' needs the source_id column, to find each source's "
            "HEALPix pixel"
        )
    try:
        return bj21_prior(table["source_id"])
    except TypeError as err:
        raise InputError(str(err)) from None


def _star_model(plx, err, alpha, beta, length_scale):
    """One star: its distance under the prior, its parallax given the distance."""
    r = numpyro.sample("r", GeneralizedGamma(alpha, beta, length_scale))
    numpyro.sample("plx", dist.Normal(1000.0 / r, err), obs=plx)


def _nuts_quantiles(plx, err, alpha, beta, length, *, seed, num_warmup, num_samples):
    """Percentiles of each star's distance from its own NUTS run."""
    mcmc = MCMC(
        NUTS(_star_model),
        num_warmup=num_warmup,
        num_samples=num_samples,
        num_chains=1,
        progress_bar=False,
        jit_model_args=True,
    )
    keys = jax.random.split(jax.random.PRNGKey(seed), len(plx))
    out = np.empty((len(plx), 3))
    for i in range(len(plx)):
        mcmc.run(keys[i], plx[i], err[i], alpha[i], beta[i], length[i])
        r = np.asarray(mcmc.get_samples()["r"])
        out[i] = np.quantile(r, SIGMA_PROBS)
    return out
