"""Distance, size and members of a star cluster: `ClusterDistance`.

Two models. The astrometric one (`gaiadist.astrometric`), the default for
tables with proper motions, sees each star's parallax, proper motion and
position: members share a distance, a proper motion (with a velocity
dispersion) and a Plummer profile on the sky, the field is broad in all
three. The parallax-only model, ``model="parallax"``, is the seed
tutorial's, described here.

In the parallax-only model every star's distance
``r`` comes either from the cluster, a Gaussian in ``ln r`` with mean
``ln D`` and width ``sigma``, with probability ``Q``, or from the field, the
EDSD prior with a free length scale ``L``; its zero-point corrected parallax
is ``Normal(1000 / r, err)``.

``method="marginal"`` integrates every star's distance out by quadrature
(:mod:`gaiadist.likelihood`) and samples the four population parameters with
NUTS; membership probabilities and distances come afterwards from the
posterior draws. ``method="latent"`` samples every star's distance as well,
as the tutorial did, and is the slow reference for the fast path.
"""

from __future__ import annotations

import copy
import math
import time
import warnings
from typing import NamedTuple

import astropy.units as u
import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from astropy.table import QTable, Table
from numpyro.infer import MCMC, NUTS, init_to_value

from .astrometric import (
    KMS_PER_MASYR_KPC,
    AstrometricStars,
    Footprint,
    astrometric_stars,
    footprint_of,
)
from .astrometric_fit import Sampler
from .astrometric_model import PARAMETERS, Layout, derive, starting_points
from .astrometric_model import default_priors as astrometric_priors
from .columns import column_values, quantity_values, read_table
from .exceptions import GaiadistWarning, InputError
from .likelihood import _LN_SQRT_2PI
from .marginal import (
    POPULATION,
    ProgressBar,
    best_mode,
    laplace,
    laplace_masses,
    mode_search_options,
    nuts_program,
    padded_size,
    padded_stars,
    run_chains,
    star_results,
    to_parameters,
    whitening,
)
from .peak import (
    CANDIDATES,
    ClusterGuess,
    proper_motion_peak,
    proper_motion_peaks,
    rank_peaks,
)
from .population import (
    constrain,
    field_log_likelihood,
    log_density,
    log_likelihood_terms,
)
from .posterior import SIGMA_PROBS
from .provenance import describe_distribution, record
from .selection import ParallaxCut, pad_cut, parallax_cut
from .stars import (
    DistanceFlag,
    _warn_flagged,
    add_distance_columns,
    parallax_inputs,
)
from .systematics import (
    PARALLAX_SYSTEMATIC,
    PARALLAX_SYSTEMATIC_SOURCE,
    distance_with_offset,
)
from .systematics import parallax_systematic as parallax_systematic_mas

__all__ = ["ASTROMETRIC_COLUMNS", "ClusterDistance", "ClusterFit", "default_priors"]

_METHODS = ("marginal", "latent")
_MODELS = ("astrometric", "parallax")
#: The columns the astrometric model needs besides the parallax's.
ASTROMETRIC_COLUMNS = (
    "ra",
    "dec",
    "pmra",
    "pmdec",
    "pmra_error",
    "pmdec_error",
    "parallax_pmra_corr",
    "parallax_pmdec_corr",
    "pmra_pmdec_corr",
)
#: The columns `proper_motion_peak` needs for a start at the cluster it finds.
_PEAK_COLUMNS = ("ra", "dec", "pmra", "pmdec")
_SUMMARY_ROWS = ("D", "approx_size", "L", "Q", "log_D", "log_sigma", "log_L", "D_stat")
_ASTROMETRIC_ROWS = (
    "D",
    "r50",
    "pmra",
    "pmdec",
    "dispersion_pm",
    "dispersion",
    "Q",
    "outlier_share",
    "outlier_dispersion",
    "L",
    "depth",
    "ra",
    "dec",
    "D_stat",
)
_UNITS = {
    "D": "pc",
    "D_stat": "pc",
    "approx_size": "pc",
    "L": "pc",
    "r50": "pc",
    "pmra": "mas / yr",
    "pmdec": "mas / yr",
    "dispersion_pm": "mas / yr",
    "dispersion": "km / s",
    "outlier_dispersion": "km / s",
    "depth": "pc",
    "ra": "deg",
    "dec": "deg",
}
#: The membership columns of `ClusterFit.table` and their descriptions.
_MEMBERSHIP_COLUMNS = {
    "p_member": "posterior probability of belonging to the cluster's members",
    "p_outlier": (
        "posterior probability of being one of the cluster's outliers: at its "
        "distance and on its profile, but moving apart from its members"
    ),
}
MIN_STARS = 10
RHAT_LIMIT = 1.01
ESS_LIMIT = 400
QUADRATURE_LIMIT = 0.2
#: A second mode with more than this share of the best one's posterior mass
#: makes the fit warn.
RIVAL_LIMIT = 0.01
#: The detection threshold (nats): below it, the log likelihood ratio of
#: the model with a cluster to the field's alone, each at its mode, says
#: there is no cluster. See ``ClusterDistance``. Calibrated on the
#: astrometric model: 63 simulated fields without a cluster (1,000-30,000
#: stars) gave at most 11.2 nats where the "cluster" was not vetoed by its
#: dispersion; 23 of 24 with 30 members among 1,000-10,000 stars at least
#: 15.6 (the 24th: a group of 3 stars, 15.4 nats; its cluster 12.2).
DETECTION_THRESHOLD = 14.0
#: The largest velocity dispersion (km/s) of a cluster at the astrometric
#: model's mode: a broader component is a population of the field.
MAX_DISPERSION = 5.0
#: The fewest members (the sum of the stars' memberships) of a cluster at
#: the astrometric model's mode: fewer are a wide binary or a multiple
#: star, which the sky's profile, shrunk onto them, makes look significant.
MIN_MEMBERS = 10.0
#: The largest width of a cluster's ``ln r`` (``approx_size / D``) at the
#: parallax-only model's mode: a broader component is a population of the
#: field, which the EDSD's one length scale does not follow.
MAX_RELATIVE_SIZE = 0.2
#: Length scales (pc) over which the field alone is maximised, on a grid.
_FIELD_SCALES = (10.0, 1e5)
_N_FIELD_SCALES = 48


def default_priors() -> dict[str, dist.Distribution]:
    """The seed tutorial's priors on the population parameters.

    ``log_L ~ Normal(ln 370, 2)``, ``log_D ~ Normal(ln 920, 2)``,
    ``log_sigma ~ Normal(0, 2)`` and ``Q ~ Uniform(0, 1)``, with ``L`` and
    ``D`` in pc and ``sigma`` the width of the cluster in ``ln r``.
    """
    return {
        "log_L": dist.Normal(math.log(370.0), 2.0),
        "log_D": dist.Normal(math.log(920.0), 2.0),
        "log_sigma": dist.Normal(0.0, 2.0),
        "Q": dist.Uniform(0.0, 1.0),
    }


class ClusterDistance:
    """Hierarchical distance model of a cluster in front of a field population.

    Parameters
    ----------
    method : {"marginal", "latent"}, optional
        ``"marginal"`` (default) integrates out every star's distance and
        samples only ``log_L, log_D, log_sigma, Q``; ``"latent"`` samples every
        star's distance too (the tutorial's model; slow, for cross-checks;
        parallax-only model).
    model : {"astrometric", "parallax"}, optional
        By default the astrometric model wherever the table has the columns
        it needs (`ASTROMETRIC_COLUMNS`: positions, proper motions, their
        errors and correlations), else the parallax-only one.
    priors : dict, optional
        NumPyro distributions replacing any of the defaults: of
        `default_priors` (``"log_L"``, ``"log_D"``, ``"log_sigma"``, ``"Q"``)
        for the parallax-only model, of
        `gaiadist.astrometric_model.default_priors` for the astrometric one
        (``log_L``, ``log_D`` and ``Q``; the depth in pc, ``log_depth``,
        instead of ``log_sigma``; the proper motion, size and field
        parameters).
    distance_guess : `~astropy.units.Quantity`, optional
        Where to start the chains' cluster distance. By default the peak of
        the parallax distribution of the stars with parallax over error > 5.
        The mode search also starts 3 times nearer and farther, and, where
        the table has ``ra``, ``dec``, ``pmra`` and ``pmdec``, at the parallax
        of the stars in the clump of proper motions that crowds the field's
        centre (`gaiadist.peak.proper_motion_peak`, recorded in ``meta``);
        the mode with the most posterior mass wins. The astrometric model
        starts at the two best of the clumps that crowd the centre, ranked by
        `gaiadist.peak.rank_peaks`, and also at ``distance_guess`` when
        given.
    proper_motion_guess : `~astropy.units.Quantity`, optional
        ``(pmra, pmdec)`` where the astrometric model's mode search also
        starts (with ``distance_guess``, if given), as from a catalogue.
    num_draws : int, optional
        Posterior draws used for the per-star membership probabilities and
        distances of the marginal method.
    parallax_systematic : `~astropy.units.Quantity` or None, optional
        Standard deviation of the parallax offset that the cluster's stars
        share (Gaia's parallax errors are correlated over small angles):
        by default `~gaiadist.systematics.PARALLAX_SYSTEMATIC`, 10.3 µas
        (Maíz Apellániz et al. 2021). The summary's ``D`` includes it;
        ``D_stat`` is the statistical part alone. None or 0 leaves it out
        (``D`` is then ``D_stat``). See `gaiadist.systematics`.
    parallax_error_scale : float, optional
        Factor applied to every ``parallax_error`` before the fit (1 by
        default: the catalogue's errors as they are). Gaia's catalogue
        errors are underestimated: Maíz Apellániz et al. (2021) find
        external errors 1.1 to 1.7 times the catalogue's, depending on G,
        and El-Badry et al. (2021) a similar factor from wide binaries. The
        factor is recorded in ``meta``.
    detection_threshold : float or None, optional
        The astrometric model's test for a cluster, in nats:
        `DETECTION_THRESHOLD` by default. After the mode search the fit
        compares the log likelihood of the model with a cluster, at its
        mode, with that of the field alone (every star a field star, its
        proper motion mixture and ``L`` refitted). Below the threshold there
        is no cluster: nothing is sampled, the summary's values are NaN,
        every ``p_member`` is 0, the stars' distances are the field's, and
        the fit warns. The statistic is ``fit.detection`` and in ``meta``.
        None samples whatever the statistic (it is still computed). The
        parallax-only model (marginal method) makes the same test, the field
        alone being the EDSD with its ``L`` refitted; without the cut in its
        likelihood (``parallax_range`` and ``selection``) a cut field
        imitates a cluster there.
    max_dispersion : `~astropy.units.Quantity` or None, optional
        The second half of the test: where the cluster's velocity
        dispersion at the mode is above this (`MAX_DISPERSION`, 5 km/s, by
        default), the component the fit found is a population of the field
        (nearby disc stars, whose proper motions the field's mixture, the
        same at every distance, cannot follow), not a cluster, and there is
        no cluster as above. Open clusters' dispersions are below about
        3 km/s. None turns this half off.
    min_members : float or None, optional
        The astrometric model's third half: where the stars' memberships
        at the mode sum to fewer than this (`MIN_MEMBERS`, 10, by default),
        the "cluster" is a wide binary or a multiple star (two stars 1"
        apart with the same motion give 42 nats, the Plummer profile
        shrunk onto them), and there is no cluster. None turns it off.
    max_relative_size : float or None, optional
        The parallax-only model's second half: where the width of the
        cluster's ``ln r`` at the mode (``approx_size / D``) is above this
        (`MAX_RELATIVE_SIZE`, 0.2, by default), the component is a broad
        population of the field, and there is no cluster. None turns it off.
    selection : bool, optional
        Whether the likelihood accounts for the fit's ``parallax_range``
        (True by default; both models): each star's likelihood is
        divided by the fraction of the cluster and of the field that the cut
        keeps at the star's parallax error (`gaiadist.selection`), so that
        ``Q``, ``L`` and the memberships describe the populations before the
        cut. False treats the cut sample as the whole field, as the
        tutorial did (its published M67 table is reproduced so).

    Examples
    --------
    >>> from gaiadist import ClusterDistance, apply_zeropoint  # doctest: +SKIP
    >>> fit = ClusterDistance().fit(apply_zeropoint(stars))  # doctest: +SKIP
    >>> fit.summary()  # doctest: +SKIP
    """

    def __init__(
        self,
        method: str = "marginal",
        *,
        model: str | None = None,
        priors: dict | None = None,
        distance_guess: u.Quantity | None = None,
        proper_motion_guess: u.Quantity | None = None,
        num_draws: int = 200,
        parallax_systematic: u.Quantity | None = PARALLAX_SYSTEMATIC,
        parallax_error_scale: float = 1.0,
        detection_threshold: float | None = DETECTION_THRESHOLD,
        max_dispersion: u.Quantity | None = MAX_DISPERSION * u.km / u.s,
        max_relative_size: float | None = MAX_RELATIVE_SIZE,
        min_members: float | None = MIN_MEMBERS,
        selection: bool = True,
    ) -> None:
        if method not in _METHODS:
            raise InputError(f"method must be one of {_METHODS}, not {method!r}")
        if model is not None and model not in _MODELS:
            raise InputError(f"model must be one of {_MODELS}, not {model!r}")
        if method == "latent" and model == "astrometric":
            raise InputError("the latent method runs the parallax-only model only")
        self.method = method
        self.model = "parallax" if method == "latent" else model
        self.priors = default_priors()
        self.astrometric_priors = astrometric_priors()
        for name, prior in (priors or {}).items():
            if name not in self.priors and name not in self.astrometric_priors:
                raise InputError(
                    f"unknown prior {name!r}; the parameters are "
                    f"{', '.join(dict.fromkeys(POPULATION + PARAMETERS))}"
                )
            if not isinstance(prior, dist.Distribution):
                raise InputError(f"prior {name!r} must be a NumPyro distribution")
            for chosen in (self.priors, self.astrometric_priors):
                if name in chosen:
                    chosen[name] = prior
        self.proper_motion_guess = None
        if proper_motion_guess is not None:
            guess = quantity_values(
                proper_motion_guess, u.mas / u.yr, "proper_motion_guess"
            )
            if np.shape(guess) != (2,) or not np.all(np.isfinite(guess)):
                raise InputError(
                    "proper_motion_guess must be two finite values, pmra and pmdec"
                )
            self.proper_motion_guess = tuple(float(g) for g in guess)
        self.distance_guess = (
            None
            if distance_guess is None
            else float(quantity_values(distance_guess, u.pc, "distance_guess"))
        )
        self.num_draws = int(num_draws)
        self.parallax_systematic = parallax_systematic_mas(parallax_systematic)
        self.parallax_error_scale = _checked_number(
            parallax_error_scale,
            "parallax_error_scale",
            lambda x: np.isfinite(x) and x > 0,
            "a positive factor",
        )
        if detection_threshold is not None:
            detection_threshold = _checked_number(
                detection_threshold,
                "detection_threshold",
                np.isfinite,
                "a number of nats or None",
            )
        self.detection_threshold = detection_threshold
        self.selection = bool(selection)
        self.max_relative_size = None
        if max_relative_size is not None:
            self.max_relative_size = _checked_number(
                max_relative_size,
                "max_relative_size",
                lambda x: x > 0,
                "a positive number or None",
            )
        self.max_dispersion = None
        if max_dispersion is not None:
            self.max_dispersion = _checked_number(
                float(quantity_values(max_dispersion, u.km / u.s, "max_dispersion")),
                "max_dispersion",
                lambda x: x > 0,
                "positive (km/s)",
            )
        self.min_members = None
        if min_members is not None:
            self.min_members = _checked_number(
                min_members, "min_members", lambda x: x >= 0, "a number >= 0 or None"
            )
        self._cache = {}

    def fit(
        self,
        table: Table | str,
        *,
        seed: int = 0,
        num_warmup: int = 300,
        num_samples: int = 1000,
        num_chains: int = 2,
        parallax_range: tuple[float, float] | None = None,
        progress: bool = False,
    ) -> ClusterFit:
        """Sample the posterior of the cluster model for the stars in ``table``.

        Parameters
        ----------
        table : `~astropy.table.Table`, `~astropy.table.QTable` or str
            Stars (or a file to read them from) with ``parallax_error`` and
            ``parallax_corrected`` (from `~gaiadist.apply_zeropoint`) or, failing
            that, ``parallax``. Columns without units are taken in mas. Select
            the stars first (the tutorial keeps 0.2 < parallax < 3 mas for M67).
        seed : int, optional
            Random seed of the sampler.
        num_warmup, num_samples, num_chains : int, optional
            NUTS settings; chains run vectorised on one device.
        parallax_range : (float, float), optional
            Fit only the stars with ``min < parallax < max`` (mas, the
            catalogue's ``parallax``, as the tutorial cut M67). The other
            rows come back in ``fit.table`` with NaN results and the
            `~gaiadist.DistanceFlag` ``EXCLUDED`` bit in ``r_flag``; the cut
            is recorded in ``meta``. Give it also for a table cut before
            (with the same bounds): the likelihood accounts for the cut
            (unless ``selection=False``; ``meta`` says which), so that ``Q``
            and ``L`` describe the populations before it.
        progress : bool, optional
            Show NumPyro's progress bar.

        Returns
        -------
        ClusterFit

        Raises
        ------
        InputError
            If a needed column is missing or has the wrong unit, fewer than
            10 stars have a usable parallax and error, or the posterior is
            zero at every starting point (priors that exclude
            ``distance_guess``).
        """
        job = self._prepare(table, parallax_range=parallax_range)
        if job.model == "astrometric":
            sample = self._fit_astrometric
        elif self.method == "marginal":
            sample = self._fit_marginal
        else:
            sample = self._fit_latent
        result = sample(job, seed, num_warmup, num_samples, num_chains, progress)
        settings = {
            "seed": seed,
            "num_warmup": num_warmup,
            "num_samples": num_samples,
            "num_chains": num_chains,
            "parallax_range_mas": job.parallax_range,
            "selection": self._selection_note(job),
        }
        return self._result(job, *result[:7], settings, *result[7:])

    def fit_many(
        self,
        tables: list,
        *,
        distance_guess: u.Quantity | None = None,
        seed: int | list[int] = 0,
        num_warmup: int = 300,
        num_samples: int = 1000,
        num_chains: int = 2,
        parallax_range: tuple[float, float] | None = None,
    ) -> list[ClusterFit]:
        """Fit several clusters at once, in one compiled program.

        Every cluster's stars are padded to the size of the largest and the
        marginal method's mode search and NUTS run vectorised over the
        clusters (`jax.vmap`); the per-star results then go through the same
        program as for `fit`, cluster by cluster. On a GPU this fits a batch
        of clusters in about the time of one; on a CPU it is no faster than
        fitting them one by one, and every cluster waits for the slowest.
        Tables fitted with the astrometric model are not batched (yet): they
        are fitted one after another.

        Parameters
        ----------
        tables : list
            One table (or file name) of stars per cluster, as for `fit`.
        distance_guess : `~astropy.units.Quantity`, optional
            One starting distance per table (NaN where there is none), in
            place of the model's own ``distance_guess``.
        seed : int or list of int, optional
            The sampler's seed, the same for every cluster or one per table.
        num_warmup, num_samples, num_chains, parallax_range : optional
            As for `fit`; the same for every table.

        Returns
        -------
        list of ClusterFit
            In the order of ``tables``; each warns as `fit` does.

        Raises
        ------
        InputError
            If the method is not ``"marginal"``, ``tables`` is empty, or any
            table is unusable or starts outside the priors (as for `fit`).
        """
        if self.method != "marginal":
            raise InputError("fit_many runs the marginal method only")
        tables = list(tables)
        if not tables:
            raise InputError("fit_many needs at least one table")
        guesses = [self.distance_guess] * len(tables)
        if distance_guess is not None:
            values = np.atleast_1d(
                quantity_values(distance_guess, u.pc, "distance_guess")
            )
            if values.shape != (len(tables),):
                raise InputError("distance_guess needs one value per table")
            guesses = [float(g) if np.isfinite(g) else None for g in values]
        jobs = [
            self._prepare(table, guess, parallax_range)
            for table, guess in zip(tables, guesses, strict=True)
        ]
        seeds = [int(s) for s in np.broadcast_to(np.asarray(seed), (len(jobs),))]
        if all(job.model == "parallax" for job in jobs):
            results = self._fit_marginal_many(
                jobs, seeds, num_warmup, num_samples, num_chains
            )
        else:  # the astrometric model is not batched: one after another
            results = [
                (
                    self._fit_astrometric
                    if job.model == "astrometric"
                    else self._fit_marginal
                )(job, one_seed, num_warmup, num_samples, num_chains, False)
                for job, one_seed in zip(jobs, seeds, strict=True)
            ]
        fits = []
        for job, result, cluster_seed in zip(jobs, results, seeds, strict=True):
            settings = {
                "seed": cluster_seed,
                "num_warmup": num_warmup,
                "num_samples": num_samples,
                "num_chains": num_chains,
                "parallax_range_mas": job.parallax_range,
                "selection": self._selection_note(job),
                "batch": len(jobs),
            }
            fits.append(self._result(job, *result[:7], settings, *result[7:]))
        return fits

    def _prepare(
        self,
        table,
        distance_guess: float | None = None,
        parallax_range: tuple[float, float] | None = None,
    ) -> _Job:
        """Read the stars, check them, make the cut and choose the starting point.

        ``distance_guess`` (pc) replaces the model's own when given.
        """
        table = read_table(table)
        plx_name, plx, err, flag = parallax_inputs(table)
        err = err * self.parallax_error_scale
        cut = ""
        raw = None
        if parallax_range is not None:
            lo, hi = _parallax_range(parallax_range)
            raw = column_values(table, "parallax", u.mas)
            # Rows without a parallax are flagged NO_PARALLAX, not EXCLUDED.
            outside = np.isfinite(raw) & ~((raw > lo) & (raw < hi))
            flag[outside] |= np.uint8(DistanceFlag.EXCLUDED)
            parallax_range = [lo, hi]
            cut = f" inside {lo:g} < parallax < {hi:g} mas"
        model, stars, footprint = self._which_model(table), None, None
        if model == "astrometric":
            footprint = footprint_of(table)
            stars, flag = astrometric_stars(table, footprint, (plx, err, flag))
        usable = flag == 0
        n_usable = int(np.count_nonzero(usable))
        if n_usable < MIN_STARS:
            needs = "a positive parallax_error"
            if model == "astrometric":
                needs += ", proper motions with errors and correlations"
            raise InputError(
                f"only {n_usable} of {len(table)} rows{cut} have a finite "
                f"{plx_name}, {needs}; the cluster model needs at least "
                f"{MIN_STARS}"
            )
        _warn_flagged(flag)
        if distance_guess is None:
            distance_guess = self.distance_guess
        init = self._initial_values(plx[usable], err[usable], distance_guess)
        peaks = []
        if all(c in table.colnames for c in _PEAK_COLUMNS):
            if stars is None:
                peaks = proper_motion_peaks(table[usable], parallax=plx_name)
            else:
                peaks = rank_peaks(
                    stars,
                    proper_motion_peaks(
                        table[usable], parallax=plx_name, count=CANDIDATES
                    ),
                )
        peak = peaks[0] if peaks else None
        selection = None
        if raw is not None and self.selection:
            selection = parallax_cut(
                *parallax_range, err[usable], shift=raw[usable] - plx[usable]
            )
            if stars is not None:
                stars = stars._replace(cut=selection)
        return _Job(
            table,
            plx_name,
            plx,
            err,
            flag,
            usable,
            init,
            parallax_range,
            peak,
            model,
            stars,
            footprint,
            selection,
            peaks[1] if len(peaks) > 1 else None,
        )

    def _selection_note(self, job) -> str | None:
        """How the fit took its ``parallax_range`` into account, for ``meta``."""
        if job.parallax_range is None:
            return None
        if job.cut is not None:
            return "parallax_range in the likelihood"
        return "parallax_range not in the likelihood (selection=False)"

    def _which_model(self, table) -> str:
        """The model for ``table``: the one asked for, or what its columns allow."""
        missing = [c for c in ASTROMETRIC_COLUMNS if c not in table.colnames]
        if self.model == "astrometric" and missing:
            raise InputError(
                "the astrometric model needs the columns "
                f"{', '.join(missing)}; use model='parallax' for parallaxes alone"
            )
        if self.model is None:
            return "parallax" if missing else "astrometric"
        return self.model

    def _result(
        self,
        job,
        by_chain,
        diverging,
        seconds,
        p_member,
        quantiles,
        check,
        modes,
        settings,
        extra=None,
    ) -> ClusterFit:
        """The `ClusterFit` of one cluster, from its draws and per-star results.

        ``p_member`` is each usable star's membership, or for the
        astrometric model the pair of its memberships as a member and as an
        outlier. ``extra`` holds more of the model's settings for ``meta``.
        """
        table, flag, usable = job.table, job.flag, job.usable
        by_chain["L"] = np.exp(by_chain["log_L"])
        by_chain["D_stat"] = np.exp(by_chain["log_D"])
        by_chain["D"] = distance_with_offset(
            by_chain["D_stat"], self.parallax_systematic, settings["seed"]
        )
        if job.model == "parallax":
            by_chain["approx_size"] = np.exp(by_chain["log_sigma"] + by_chain["log_D"])
        priors = self.astrometric_priors if job.model == "astrometric" else self.priors

        out = table.copy()
        columns = {"p_member": p_member}
        if job.model == "astrometric":
            columns = dict(zip(("p_member", "p_outlier"), p_member, strict=True))
        for name, values in columns.items():
            out[name] = np.full(len(table), np.nan)
            out[name][usable] = values
            out[name].info.description = _MEMBERSHIP_COLUMNS[name]
            out[name].info.format = ".5g"
        q_all = np.full((len(table), 3), np.nan)
        q_all[usable] = quantiles
        add_distance_columns(
            out,
            q_all,
            flag,
            median="median of the posterior distance under the cluster model",
            flag_zero="star used",
            fmt=".5g",
        )
        fit = ClusterFit(
            table=out,
            samples=by_chain,
            diverging=diverging,
            method=self.method,
            seconds=seconds,
            quadrature_check=check,
            parallax=np.where(usable, job.plx, np.nan),
            parallax_error=np.where(usable, job.err, np.nan),
            priors=priors,
            modes=modes,
            model=job.model,
            parallax_systematic=self.parallax_systematic,
            detection=(extra or {}).get("detection_nats"),
            detected=(extra or {}).get("detected", True),
        )
        extra = dict(extra or {})
        if job.model == "astrometric":
            extra["footprint"] = job.footprint.describe()
            extra["proper_motion_guess_mas_yr"] = self.proper_motion_guess
        record(
            out,
            "cluster_distance",
            {
                "method": self.method,
                "model": job.model,
                **extra,
                "parallax_column": job.plx_name,
                "parallax_systematic_mas": self.parallax_systematic,
                "parallax_error_scale": self.parallax_error_scale,
                "parallax_systematic_source": (
                    PARALLAX_SYSTEMATIC_SOURCE if self.parallax_systematic else None
                ),
                "priors": {k: describe_distribution(v) for k, v in priors.items()},
                **settings,
                "stars_used": int(np.count_nonzero(usable)),
                "proper_motion_peak": None if job.peak is None else job.peak._asdict(),
                "modes": modes,
            },
        )
        fit._warn_if_unconverged()
        return fit

    def _fit_astrometric(
        self, job, seed, num_warmup, num_samples, num_chains, progress
    ):
        """The astrometric model: mode search, NUTS, then the per-star results."""
        key = ("astrometric",)
        if key not in self._cache:
            self._cache[key] = Sampler(Layout(self.astrometric_priors))
        sampler = self._cache[key]
        guess = {}
        if job.init["guessed"]:
            guess["D"] = math.exp(job.init["log_D"])
        if self.proper_motion_guess is not None:
            guess["pmra"], guess["pmdec"] = self.proper_motion_guess
        points = starting_points(
            job.stars,
            job.peak,
            math.exp(job.init["log_D"]),
            job.init["log_L"],
            n_field=sampler.layout.shapes["field_weights"][0],
            guess=guess,
            clump=proper_motion_peak(
                job.table[job.usable], parallax=job.plx_name, contrast=False
            ),
            runner_up=job.runner_up,
        )
        starts = np.stack([sampler.layout.pack(p) for p in points])
        result = sampler.run(
            job.stars,
            starts,
            seed=seed,
            num_warmup=num_warmup,
            num_samples=num_samples,
            num_chains=num_chains,
            num_draws=self.num_draws,
            detection_threshold=self.detection_threshold,
            max_dispersion=self.max_dispersion,
            min_members=self.min_members,
            progress=progress,
        )
        if not np.any(np.isfinite(result.log_p)):
            raise InputError(
                "the posterior is zero or undefined at every starting point of "
                "the mode search; check that distance_guess lies inside the "
                "support of the priors"
            )
        by_chain = _astrometric_draws(result.samples, job.footprint)
        layout = sampler.layout
        mass = laplace_masses(result.log_p, result.hessians)
        found = []
        for x, m in zip(result.modes, mass, strict=True):
            params, _ = layout.unpack(jnp.asarray(x))
            found.append(
                {
                    "D": math.exp(float(params["log_D"])),
                    "pmra": float(params["pmra"]),
                    "pmdec": float(params["pmdec"]),
                    "log_mass": float(m),
                }
            )
        return (
            by_chain,
            result.diverging,
            result.seconds,
            (result.p_member, result.p_outlier),
            result.quantiles,
            result.check,
            found,
            # The Gaussians of the field's proper motions the data called for,
            # and the stars the sampler took for field stars (with the
            # largest membership any of them had at a draw).
            {
                "field_gaussians": [int(on) for on in result.field_on],
                "field_only_stars": result.field_only,
                "field_only_p_member_max": result.field_only_p_max,
                "detection_nats": result.detection,
                "field_alone_L_pc": math.exp(result.field_alone_log_l),
                "mode_dispersion_km_s": result.mode_dispersion,
                "mode_r50_pc": result.mode_r50,
                "mode_members": result.mode_members,
                "max_dispersion_km_s": self.max_dispersion,
                "min_members": self.min_members,
                "detection_threshold_nats": self.detection_threshold,
                "detected": result.detected,
            },
        )

    def _fit_marginal(self, job, seed, num_warmup, num_samples, num_chains, progress):
        """Laplace-whitened NUTS on the population, then the per-star results."""
        plx, err = job.plx[job.usable], job.err[job.usable]
        n = plx.shape[0]
        dtype = jnp.result_type(float)
        data = (
            *padded_stars(plx, err, padded_size(n), dtype),
            pad_cut(job.cut, padded_size(n), dtype),
        )
        starts = self._starts(job)
        start = time.perf_counter()
        run, bar = self._compiled("nuts", dtype, num_warmup, num_samples, progress)
        keys, z0 = _chain_starts(seed, num_chains)
        z0 = z0.astype(dtype)
        modes, log_p, hessians = self._compiled("laplace", dtype)(
            starts.astype(dtype), *data
        )
        centre, chol = _whitening_map(modes, log_p, hessians, starts[0])
        found = self._modes_found(modes, log_p, hessians)
        test = self._parallax_detection(centre, data, dtype)
        if not test["detected"]:
            return (
                *self._marginal_no_cluster(
                    job, test, num_chains, num_samples, start, dtype
                ),
                found,
                test,
            )
        draws, diverging = run_chains(
            run,
            keys,
            z0,
            tuple(data),
            centre.astype(dtype),
            chol.astype(dtype),
            progress=bar,
        )
        seconds = time.perf_counter() - start  # JAX is asynchronous until here
        by_chain = to_parameters(draws)
        theta = self._draws_for_stars(by_chain, seed)
        p_member, quantiles, check = star_results(plx, err, theta.astype(dtype))
        return by_chain, diverging, seconds, p_member, quantiles, check, found, test

    def _parallax_detection(self, centre, data, dtype) -> dict:
        """The parallax-only model's test for a cluster, at the mode ``centre``.

        The log likelihood of the model at the mode, less that of the field
        alone at its best ``L`` (a grid of `_N_FIELD_SCALES` over
        `_FIELD_SCALES`, then a finer one about its best point), and the
        width of the cluster's ``ln r`` at the mode. Returns what goes into
        ``meta``.
        """
        theta = np.asarray(constrain(jnp.asarray(centre, dtype), self.priors))
        program = self._compiled("detection", dtype)
        coarse = np.linspace(*np.log(_FIELD_SCALES), _N_FIELD_SCALES)
        cluster, field = program(theta.astype(dtype), coarse.astype(dtype), *data)
        k = int(np.nanargmax(np.asarray(field)))
        step = coarse[1] - coarse[0]
        fine = np.linspace(coarse[k] - step, coarse[k] + step, _N_FIELD_SCALES)
        _, field = program(theta.astype(dtype), fine.astype(dtype), *data)
        field = np.asarray(field, float)
        k = int(np.nanargmax(field))
        detection = float(cluster) - float(field[k])
        width = math.exp(float(theta[POPULATION.index("log_sigma")]))
        detected = (
            self.detection_threshold is None or detection >= self.detection_threshold
        ) and (self.max_relative_size is None or width <= self.max_relative_size)
        return {
            "detection_nats": detection,
            "field_alone_L_pc": math.exp(fine[k]),
            "mode_relative_size": width,
            "max_relative_size": self.max_relative_size,
            "detection_threshold_nats": self.detection_threshold,
            "detected": bool(detected),
        }

    def _marginal_no_cluster(self, job, test, num_chains, num_samples, start, dtype):
        """NaN draws, memberships 0, and every star's distance under the field.

        The field is the EDSD at the field-alone ``L`` of ``test``; the
        cluster gets a share of 1e-30 in the per-star program.
        """
        shape = (num_chains, num_samples)
        by_chain = {k: np.full(shape, np.nan) for k in POPULATION}
        log_l = math.log(test["field_alone_L_pc"])
        theta = np.array([[log_l, log_l + math.log(2.0), 0.0, 1e-30]])
        plx, err = job.plx[job.usable], job.err[job.usable]
        _, quantiles, check = star_results(plx, err, theta.astype(dtype))
        seconds = time.perf_counter() - start
        return (
            by_chain,
            np.zeros(shape, bool),
            seconds,
            np.zeros(plx.shape[0]),
            quantiles,
            check,
        )

    def _fit_marginal_many(self, jobs, seeds, num_warmup, num_samples, num_chains):
        """`_fit_marginal` for several clusters, vectorised over them."""
        dtype = jnp.result_type(float)
        sizes = [int(np.count_nonzero(job.usable)) for job in jobs]
        size = padded_size(max(sizes))
        data = [
            np.stack(arrays)
            for arrays in zip(
                *(
                    padded_stars(job.plx[job.usable], job.err[job.usable], size, dtype)
                    for job in jobs
                ),
                strict=True,
            )
        ]
        cuts = [pad_cut(job.cut, size, dtype) for job in jobs]
        data.append(
            None
            if cuts[0] is None
            else jax.tree_util.tree_map(lambda *a: np.stack(a), *cuts)
        )
        starts = np.stack([self._starts(job, i) for i, job in enumerate(jobs)])
        start = time.perf_counter()
        modes, log_p, hessians = (
            np.asarray(a)
            for a in self._compiled("laplace_many", dtype)(starts.astype(dtype), *data)
        )
        maps = [
            _whitening_map(modes[i], log_p[i], hessians[i], starts[i, 0], index=i)
            for i in range(len(jobs))
        ]
        centres = np.stack([m[0] for m in maps]).astype(dtype)
        chols = np.stack([m[1] for m in maps]).astype(dtype)
        chains = [_chain_starts(s, num_chains) for s in seeds]
        run = self._compiled("nuts_many", dtype, num_warmup, num_samples)
        draws, diverging = run(
            np.stack([c[0] for c in chains]),
            np.stack([c[1] for c in chains]).astype(dtype),
            tuple(data),
            centres,
            chols,
        )
        diverging = np.asarray(diverging)
        seconds = (time.perf_counter() - start) / len(jobs)
        by_chain = [to_parameters(d) for d in np.asarray(draws)]
        # The test for a cluster, table by table (every table was sampled,
        # in one program; where there is no cluster the draws are dropped).
        tests = [
            self._parallax_detection(
                centres[i], jax.tree_util.tree_map(lambda a, i=i: a[i], data), dtype
            )
            for i in range(len(jobs))
        ]
        return [
            (
                (
                    by_chain[i],
                    diverging[i],
                    seconds,
                    *star_results(
                        job.plx[job.usable],
                        job.err[job.usable],
                        self._draws_for_stars(by_chain[i], seeds[i]).astype(dtype),
                    ),
                )
                if tests[i]["detected"]
                else self._marginal_no_cluster(
                    job, tests[i], num_chains, num_samples, start, dtype
                )
            )
            + (self._modes_found(modes[i], log_p[i], hessians[i]), tests[i])
            for i, job in enumerate(jobs)
        ]

    def _starts(self, job: _Job, index: int | None = None) -> np.ndarray:
        """The mode searches' starting points, unconstrained, shape (4, 4).

        Raises the error of `_zero_posterior` at once, before anything is
        compiled, where every point lies outside the priors' support
        (``index``: the table's place in a batch).
        """
        points = _starting_points(job.init, job.peak)
        if not any(
            all(bool(self.priors[k].support(v)) for k, v in p.items()) for p in points
        ):
            raise _zero_posterior(index)
        return np.array(
            [
                [
                    float(dist.biject_to(self.priors[k].support).inv(value))
                    for k, value in point.items()
                ]
                for point in points
            ]
        )

    def _modes_found(self, modes, log_p, hessians) -> list[dict]:
        """Where each mode search ended: D (pc) and its Laplace log mass."""
        to_log_d = dist.biject_to(self.priors["log_D"].support)
        index = POPULATION.index("log_D")
        log_d = [float(to_log_d(x)) for x in np.asarray(modes)[:, index]]
        mass = laplace_masses(np.asarray(log_p), np.asarray(hessians))
        return [
            {"D": math.exp(value), "log_mass": float(m)}
            for value, m in zip(log_d, mass, strict=True)
        ]

    def _draws_for_stars(self, by_chain: dict, seed: int) -> np.ndarray:
        """``num_draws`` posterior draws, shape (k, 4), for the per-star results."""
        flat = {k: v.reshape(-1) for k, v in by_chain.items()}
        total = flat["Q"].shape[0]
        pick = np.random.default_rng(seed).choice(
            total, size=min(self.num_draws, total), replace=False
        )
        return np.stack([flat[k][pick] for k in POPULATION], axis=1)

    def _fit_latent(self, job, seed, num_warmup, num_samples, num_chains, progress):
        """The tutorial's model: NUTS over the population and every distance."""
        plx, err, init = job.plx[job.usable], job.err[job.usable], job.init
        dtype = jnp.result_type(float)
        outside = [
            f"{k} = {init[k]:.4g}"
            for k in POPULATION
            if not bool(self.priors[k].support(init[k]))
        ]
        if outside:
            raise InputError(
                f"the starting point ({', '.join(outside)}) is outside the "
                "priors; check that distance_guess lies inside the support of "
                "the priors"
            )
        init = {k: init[k] for k in POPULATION}
        init["r"] = np.clip(np.where(plx > 0, 1000.0 / np.abs(plx), 1e4), 1.0, 1e5)
        mcmc = MCMC(
            NUTS(_latent_model, init_strategy=init_to_value(values=init)),
            num_warmup=num_warmup,
            num_samples=num_samples,
            num_chains=num_chains,
            chain_method="vectorized",
            progress_bar=progress,
            postprocess_fn=_constrainer(self.priors),
        )
        start = time.perf_counter()
        mcmc.run(
            jax.random.PRNGKey(seed),
            jnp.asarray(plx, dtype),
            jnp.asarray(err, dtype),
            self.priors,
            extra_fields=("diverging",),
        )
        # Derived quantities are computed here rather than as deterministic
        # sites: NumPyro obtains those (and, by default, the constrained
        # values) by re-running the whole model per draw.
        draws = mcmc.get_samples(group_by_chain=True)
        by_chain = {k: np.asarray(v) for k, v in draws.items()}
        seconds = time.perf_counter() - start
        diverging = np.asarray(mcmc.get_extra_fields(group_by_chain=True)["diverging"])
        r = by_chain.pop("r").reshape(-1, plx.shape[0])
        p_member = _latent_membership(by_chain, r)
        quantiles = np.quantile(r, SIGMA_PROBS, axis=0).T
        return by_chain, diverging, seconds, p_member, quantiles, None, None

    def _compiled(self, kind, dtype, *settings):
        """The jitted Laplace step or sampler, kept for later fits.

        ``"nuts"`` gives the sampler with its progress bar (or None). The
        ``"_many"`` kinds are the same functions vectorised over a leading
        cluster axis of every argument.
        """
        key = (kind, np.dtype(dtype).name, *settings)
        if key not in self._cache:
            priors = self.priors

            def mode_search(starts, plx, err, weight, cut):
                return laplace(starts, plx, err, weight, priors, cut)

            def density(x, data):
                plx, err, weight, cut = data
                return log_density(x, plx, err, weight, priors, cut)

            def to_values(x):
                return constrain(x, priors)

            def detection(theta, log_ls, plx, err, weight, cut):
                cluster = log_likelihood_terms(theta, plx, err, weight, 0, cut)[0]
                field = jax.vmap(
                    lambda log_l: field_log_likelihood(log_l, plx, err, weight, cut)
                )(log_ls)
                return cluster, field

            options = mode_search_options()
            if kind == "detection":
                self._cache[key] = jax.jit(detection)
            elif kind == "laplace":
                self._cache[key] = jax.jit(mode_search, compiler_options=options)
            elif kind == "laplace_many":
                self._cache[key] = jax.jit(
                    jax.vmap(mode_search), compiler_options=options
                )
            elif kind == "nuts":
                num_warmup, num_samples, progress = settings
                bar = ProgressBar(num_warmup + num_samples) if progress else None
                self._cache[key] = (
                    nuts_program(density, to_values, num_warmup, num_samples, bar),
                    bar,
                )
            else:
                self._cache[key] = jax.jit(
                    jax.vmap(nuts_program(density, to_values, *settings))
                )
        return self._cache[key]

    def _initial_values(
        self, plx: np.ndarray, err: np.ndarray, distance_guess: float | None
    ) -> dict:
        """A sensible starting point: the cluster at the parallax peak."""
        good = plx / err > 5
        sample = plx[good] if np.count_nonzero(good) >= MIN_STARS else plx[plx > 0]
        if sample.size == 0:
            sample = np.abs(plx) + err
        if distance_guess is not None:
            distance = distance_guess
        else:
            lo, hi = np.percentile(sample, [1, 99])
            counts, edges = np.histogram(sample, bins=60, range=(lo, hi))
            k = int(np.argmax(counts))
            distance = 1000.0 / max(0.5 * (edges[k] + edges[k + 1]), 1e-3)
        field = np.median(1000.0 / sample) / 3.0
        return {
            "log_D": math.log(distance),
            "log_sigma": math.log(0.02),
            "log_L": math.log(max(field, 1.0)),
            "Q": 0.3,
            "guessed": distance_guess is not None,
        }


class ClusterFit:
    """Result of `ClusterDistance.fit`.

    Attributes
    ----------
    table : `~astropy.table.Table`
        The input rows and columns with ``p_member``, ``r_med``, ``r_lo``,
        ``r_hi`` and ``r_flag``.
    samples : dict of `numpy.ndarray`
        Posterior draws of the population parameters and of ``L``, ``D``
        (with the shared parallax systematic), ``D_stat`` (without it) and
        ``approx_size``, shape ``(num_chains, num_samples)``.
    diverging : `numpy.ndarray`
        Divergent transitions, shape ``(num_chains, num_samples)``.
    method : str
        ``"marginal"`` or ``"latent"``.
    seconds : float
        Wall time of the sampling (compilation included).
    quadrature_check : float or None
        For the marginal method: the standard deviation, over the draws used
        for the per-star results, of the difference between the total log
        likelihood from the sampler's fast quadrature and from the robust one
        (nats). Below about 0.1 the sampled posterior is the exact one for
        all practical purposes; above `QUADRATURE_LIMIT` the fit warns.
    modes : list of dict or None
        For the marginal method: where each of the mode searches ended,
        ``D`` (pc) and ``log_mass`` (the Laplace approximation of the
        posterior mass there). The chains sample around the best one; the
        fit warns when another, at a distinct D, holds more than
        `RIVAL_LIMIT` of its mass.
    parallax_systematic : float
        Standard deviation (mas) of the parallax offset shared by the
        cluster's stars, included in ``samples["D"]`` (0: left out);
        ``samples["D_stat"]`` is the statistical part alone.
    detection : float or None
        The log likelihood ratio (nats) of the model with a cluster to the
        field's alone, each at its mode; None for the latent method, which
        has no such test.
    detected : bool
        False where ``detection`` was below the threshold
        (``ClusterDistance(detection_threshold=...)``), or the cluster at
        the mode too broad to be one (its velocity dispersion above
        ``max_dispersion``, or for the parallax-only model the width of its
        ``ln r`` above ``max_relative_size``) or too small (fewer members
        than ``min_members``): there is no cluster, nothing
        was sampled, ``samples`` are NaN, the summary's values NaN and every
        ``p_member`` 0.
    """

    def __init__(
        self,
        *,
        table,
        samples,
        diverging,
        method,
        seconds,
        quadrature_check,
        parallax,
        parallax_error,
        priors,
        modes=None,
        model="parallax",
        parallax_systematic=0.0,
        detection=None,
        detected=True,
    ):
        self.table = table
        self.samples = samples
        self.diverging = diverging
        self.method = method
        self.seconds = seconds
        self.quadrature_check = quadrature_check
        self._parallax = parallax
        self._parallax_error = parallax_error
        self._priors = priors
        self.modes = modes
        self.model = model
        self.parallax_systematic = parallax_systematic
        self.detection = detection
        self.detected = bool(detected)

    def posterior_predictive(self, num_draws: int = 100, *, seed: int = 0) -> QTable:
        """Parallaxes simulated from the fitted model, star by star.

        For each of ``num_draws`` posterior draws of the population, every
        star is made a member with probability ``Q`` or a field star, given a
        distance from the cluster's log-normal or the field's EDSD, and a
        parallax ``1000 / r`` plus its own Gaussian error.

        Returns
        -------
        `~astropy.table.QTable`
            One row per input row: ``source_id`` (when present), the
            observed ``parallax`` used by the fit and ``parallax_rep``, shape
            ``(num_draws,)`` per row, in mas; NaN for rows the fit did not use.
        """
        rng = np.random.default_rng(seed)
        flat = {
            k: self.samples[k].reshape(-1) for k in ("log_D", "log_sigma", "L", "Q")
        }
        pick = rng.choice(flat["Q"].size, size=num_draws, replace=False)
        return self._predictive({k: v[pick] for k, v in flat.items()}, rng)

    def prior_predictive(self, num_draws: int = 100, *, seed: int = 0) -> QTable:
        """As `posterior_predictive`, with the population drawn from the priors."""
        key = jax.random.PRNGKey(seed)
        draws = {}
        for name, prior in self._priors.items():
            key, sub = jax.random.split(key)
            draws[name] = np.asarray(prior.sample(sub, (num_draws,)), dtype=float)
        if self.model == "astrometric":
            draws["log_sigma"] = np.asarray(derive(draws)["log_sigma"])
        draws["L"] = np.exp(draws.pop("log_L"))
        return self._predictive(draws, np.random.default_rng(seed))

    def _predictive(self, draws: dict, rng: np.random.Generator) -> QTable:
        plx, err = self._parallax, self._parallax_error
        k, n = draws["Q"].size, plx.size
        member = rng.random((k, n)) < draws["Q"][:, None]
        cluster = np.exp(
            draws["log_D"][:, None]
            + np.exp(draws["log_sigma"])[:, None] * rng.normal(size=(k, n))
        )
        field = rng.gamma(3.0, 1.0, size=(k, n)) * draws["L"][:, None]
        r = np.where(member, cluster, field)
        rep = 1000.0 / r + err * rng.normal(size=(k, n))
        out = QTable()
        if "source_id" in self.table.colnames:
            out["source_id"] = self.table["source_id"]
        out["parallax"] = plx * u.mas
        out["parallax_rep"] = rep.T * u.mas
        return out

    @property
    def _rows(self) -> tuple[str, ...]:
        return _ASTROMETRIC_ROWS if self.model == "astrometric" else _SUMMARY_ROWS

    def to_arviz(self):
        """The population posterior as an `arviz.InferenceData`."""
        az = _import_arviz()
        names = list(self._rows)
        return az.from_dict(
            posterior={k: self.samples[k] for k in names},
            sample_stats={"diverging": self.diverging},
        )

    def summary(self) -> Table:
        """Posterior summary of D, approx_size, L, Q and the log parameters.

        Returns
        -------
        `~astropy.table.Table`
            One row per parameter: mean, sd, the 94 % highest-density interval
            (``hdi_3%``, ``hdi_97%``), bulk and tail effective sample sizes
            (whole numbers; -1 where undefined) and ``r_hat``, from ArviZ.
            Its ``meta`` holds ``n_members`` (stars with ``p_member > 0.5``),
            ``sum_p_member``, ``detection`` and ``detected`` (see
            `ClusterFit`) and the fit's provenance (``meta["gaiadist"]`` of
            `table`: settings, priors, the cut, the zero point, package
            versions). Where no cluster was detected every value is NaN and
            every effective sample size -1.
        """
        out = Table()
        out["parameter"] = list(self._rows)
        out["unit"] = [_UNITS.get(k, "") for k in self._rows]
        columns = ("mean", "sd", "hdi_3%", "hdi_97%", "ess_bulk", "ess_tail", "r_hat")
        if self.detected:
            az = _import_arviz()
            frame = az.summary(
                self.to_arviz(), var_names=list(self._rows), hdi_prob=0.94
            )
            for col in columns:
                out[col] = np.asarray(frame.loc[list(self._rows), col], dtype=float)
        else:  # no cluster: nothing was sampled
            for col in columns:
                out[col] = np.full(len(out), np.nan)
        for col in ("ess_bulk", "ess_tail"):  # -1 where ArviZ has no value
            ess = out[col]
            out[col] = np.where(np.isfinite(ess), np.round(ess), -1).astype(np.int64)
        p_member = np.asarray(self.table["p_member"], dtype=float)
        out.meta["n_members"] = int(np.count_nonzero(p_member > 0.5))
        out.meta["sum_p_member"] = float(np.nansum(p_member))
        out.meta["detection"] = self.detection
        out.meta["detected"] = self.detected
        out.meta["gaiadist"] = copy.deepcopy(self.table.meta.get("gaiadist", {}))
        return out

    def problems(self) -> list[str]:
        """What makes this fit doubtful; empty when it looks converged.

        Checks r_hat (> 1.01) and the bulk and tail effective sample sizes
        (< 400) of every summarised parameter, divergent transitions, and
        for the marginal method the spread of the sampler's quadrature error
        over the draws (`quadrature_check` > 0.2 nats) and another mode of
        the mode search, at a distinct D, with more than `RIVAL_LIMIT` of the
        sampled mode's posterior mass, and a shared parallax systematic that
        leaves D without an upper bound. `fit` warns with these. Where no
        cluster was detected, that alone.
        """
        if not self.detected:
            return [self._no_cluster_message()]
        summary = self.summary()
        problems = []
        bad_rhat = summary["parameter"][summary["r_hat"] > RHAT_LIMIT]
        if len(bad_rhat):
            problems.append(f"r_hat > {RHAT_LIMIT} for {', '.join(bad_rhat)}")
        ess = np.minimum(summary["ess_bulk"], summary["ess_tail"])
        low = summary["parameter"][ess < ESS_LIMIT]
        if len(low):
            problems.append(f"effective sample size < {ESS_LIMIT} for {', '.join(low)}")
        if self.quadrature_check is not None and (
            self.quadrature_check > QUADRATURE_LIMIT
        ):
            problems.append(
                f"the sampler's quadrature is off by {self.quadrature_check:.2g} "
                "nats (sd over draws), so the posterior may be distorted"
            )
        n_div = int(np.count_nonzero(self.diverging))
        if n_div:
            problems.append(f"{n_div} divergent transitions")
        unbounded = np.isnan(self.samples["D"]) & ~np.isnan(self.samples["D_stat"])
        if np.any(unbounded):
            problems.append(
                f"D has no upper bound in {np.mean(unbounded):.1%} of the draws: "
                "their parallax less the shared systematic offset (sd "
                f"{self.parallax_systematic:.3g} mas) is not positive"
            )
        problems.extend(self._rival_modes())
        return problems

    def _rival_modes(self) -> list[str]:
        """Other modes, at a distinct D or proper motion, with a fair share of mass."""
        if not self.modes:
            return []
        mass = np.array([m["log_mass"] for m in self.modes])
        if not np.any(np.isfinite(mass)):
            return []
        best = int(np.argmax(mass))
        log_d = np.log([m["D"] for m in self.modes])
        spread = 5.0 * float(np.std(self.samples["log_D"])) + 0.01
        # The astrometric model's modes also differ by their proper motion.
        motion = np.array(
            [[m.get("pmra", 0.0), m.get("pmdec", 0.0)] for m in self.modes]
        )
        pm_spread = 0.05
        if "pmra" in self.samples:
            pm_spread += 5.0 * float(
                np.hypot(np.std(self.samples["pmra"]), np.std(self.samples["pmdec"]))
            )
        rivals = {}
        for i, m in enumerate(self.modes):
            share = math.exp(min(mass[i] - mass[best], 0.0))
            distinct = abs(log_d[i] - log_d[best]) > spread or (
                np.hypot(*(motion[i] - motion[best])) > pm_spread
            )
            if distinct and share > RIVAL_LIMIT:
                # The same rival from two starts counts once.
                key = (round(m["D"], -1), *np.round(motion[i], 1))
                where = (
                    f", proper motion ({motion[i][0]:.2f}, {motion[i][1]:.2f}) mas/yr"
                    if "pmra" in m
                    else ""
                )
                rivals[key] = max(
                    (share, m["D"], where), rivals.get(key, (0.0, 0.0, ""))
                )
        return [
            f"the mode search also found a solution at D = {d:.4g} pc{where} "
            f"with {share:.0%} of the posterior mass of the one sampled "
            "(Laplace approximation), which the chains did not explore"
            for _, (share, d, where) in sorted(rivals.items())
        ]

    def _no_cluster_message(self) -> str:
        meta = self.table.meta["gaiadist"]["cluster_distance"]
        threshold = meta["detection_threshold_nats"]
        if threshold is not None and not self.detection >= threshold:
            why = (
                "the stars are as well explained by the field alone (log "
                "likelihood ratio of the model with a cluster "
                f"{self.detection:.1f} nats, below the threshold of {threshold:g})"
            )
        elif meta.get("min_members") is not None and not (
            meta["mode_members"] >= meta["min_members"]
        ):
            why = (
                "the group the fit found is too small to be a cluster (its "
                f"stars' memberships at the mode sum to {meta['mode_members']:.3g}, "
                f"fewer than {meta['min_members']:g}: a wide binary or a "
                "multiple star)"
            )
        elif "mode_relative_size" in meta:
            why = (
                "the component the fit found is a broad population of the field, "
                "not a cluster (the width of its ln r "
                f"{meta['mode_relative_size']:.3g}, above "
                f"{meta['max_relative_size']:g})"
            )
        else:
            why = (
                "the component the fit found is a population of the field, not a "
                f"cluster (velocity dispersion {meta['mode_dispersion_km_s']:.3g} "
                f"km/s, above {meta['max_dispersion_km_s']:g}; r50 "
                f"{meta['mode_r50_pc']:.3g} pc)"
            )
        return (
            f"no cluster: {why}, so nothing was sampled and the cluster's "
            "parameters are NaN"
        )

    def _warn_if_unconverged(self) -> None:
        if not self.detected:
            switches = (
                "detection_threshold=None, max_dispersion=None and min_members=None"
                if self.model == "astrometric"
                else "detection_threshold=None and max_relative_size=None"
            )
            warnings.warn(
                self._no_cluster_message() + f". Give {switches} to sample anyway.",
                GaiadistWarning,
                stacklevel=3,
            )
            return
        problems = self.problems()
        if problems:
            warnings.warn(
                "the cluster fit may not have converged: "
                + "; ".join(problems)
                + ". Run longer (num_warmup, num_samples), check the star "
                "selection, or give distance_guess.",
                GaiadistWarning,
                stacklevel=3,
            )

    def __repr__(self) -> str:
        if not self.detected:
            return (
                f"<ClusterFit model={self.model!r} stars={len(self.table)} "
                f"no cluster (detection {self.detection:.1f} nats)>"
            )
        size = "r50" if self.model == "astrometric" else "approx_size"
        d, r, q = (self.samples[k] for k in ("D", size, "Q"))
        return (
            f"<ClusterFit model={self.model!r} method={self.method!r} "
            f"stars={len(self.table)} "
            f"D={np.mean(d):.1f}±{np.std(d):.1f} pc "
            f"{size}={np.mean(r):.2f}±{np.std(r):.2f} pc "
            f"Q={np.mean(q):.3f}±{np.std(q):.3f}>"
        )


class _Job(NamedTuple):
    """One cluster's stars, read and checked, ready to sample."""

    table: Table
    plx_name: str
    plx: np.ndarray
    err: np.ndarray
    flag: np.ndarray
    usable: np.ndarray
    init: dict
    parallax_range: list[float] | None
    peak: ClusterGuess | None
    model: str = "parallax"
    stars: AstrometricStars | None = None
    footprint: Footprint | None = None
    cut: ParallaxCut | None = None
    #: The second clump of proper motions concentrated on the sky.
    runner_up: ClusterGuess | None = None


def _astrometric_draws(samples: dict, footprint: Footprint) -> dict:
    """The astrometric model's draws with the summary's derived quantities.

    ``D``, ``r50``, ``L`` and ``depth`` (the members' spread in distance,
    ``sigma D``) in pc, the dispersion in km/s and in mas/yr at ``D``, the
    outliers' dispersion in km/s, and
    the cluster's centre as ``ra`` and ``dec`` (deg).
    """
    out = dict(samples)
    d = np.exp(samples["log_D"])
    out["r50"] = np.exp(samples["log_r50"])
    out["dispersion"] = np.exp(samples["log_dispersion"])
    out["dispersion_pm"] = out["dispersion"] / (KMS_PER_MASYR_KPC * d / 1000.0)
    out["outlier_dispersion"] = out["dispersion"] * (
        1.0 + np.exp(samples["log_outlier_widen"])
    )
    out["depth"] = np.exp(samples["log_sigma"]) * d
    out["ra"], out["dec"] = footprint.position(
        footprint.scale * samples["centre_x"], footprint.scale * samples["centre_y"]
    )
    return out


def _parallax_range(bounds) -> tuple[float, float]:
    """``(min, max)`` in mas as floats (plain numbers are mas), or a clear error."""
    try:
        if isinstance(bounds, u.Quantity):
            bounds = quantity_values(bounds, u.mas, "parallax_range")
        lo, hi = (float(b) for b in bounds)
    except (TypeError, ValueError):
        raise InputError(
            f"parallax_range must be two numbers (min, max) in mas, not {bounds!r}"
        ) from None
    if not lo < hi:
        raise InputError(
            f"parallax_range ({lo:g}, {hi:g}) is empty: min must be less than max"
        )
    return lo, hi


def _chain_starts(seed: int, num_chains: int) -> tuple[np.ndarray, np.ndarray]:
    """The chains' random keys and starting points in the whitened coordinates."""
    keys = np.asarray(jax.random.split(jax.random.PRNGKey(seed), num_chains))
    z0 = np.random.default_rng(seed).normal(size=(num_chains, len(POPULATION)))
    return keys, z0


def _whitening_map(modes, log_p, hessians, start, index=None):
    """`whitening` from the mode searches' results, or a clear error.

    ``index`` is the table's place in a batch, named in the message.
    """
    log_p = np.asarray(log_p)
    if not np.any(np.isfinite(log_p)):
        raise _zero_posterior(index)
    return whitening(*best_mode(np.asarray(modes), log_p, np.asarray(hessians)), start)


def _checked_number(value, name: str, ok, what: str) -> float:
    """``value`` as a float, or an InputError ("NAME must be WHAT") unless ``ok``."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if not ok(number):
        raise InputError(f"{name} must be {what}, not {value!r}")
    return number


def _zero_posterior(index: int | None = None) -> InputError:
    """The error for a posterior that is zero at every starting point."""
    which = "" if index is None else f" of tables[{index}]"
    return InputError(
        f"the posterior{which} is zero or undefined at every starting point "
        "of the mode search; check that distance_guess lies inside the "
        "support of the priors"
    )


def _import_arviz():
    with warnings.catch_warnings():
        # ArviZ 0.2x announces its 1.0 refactor with a FutureWarning on import.
        warnings.simplefilter("ignore", FutureWarning)
        import arviz

    return arviz


def _starting_points(init: dict, peak: ClusterGuess | None) -> list[dict]:
    """Where the mode searches start, ordered as `POPULATION`.

    ``init``, ``init`` with the cluster 3 times nearer and 3 times farther,
    so that a poor distance guess is not fatal, and ``init`` with the
    cluster at the distance of the proper motion peak (``init`` again where
    there is none, so that the search always has four starts and one
    compiled program).
    """
    points = [
        {k: init[k] + (shift if k == "log_D" else 0.0) for k in POPULATION}
        for shift in (0.0, -math.log(3.0), math.log(3.0))
    ]
    at_peak = dict(points[0])
    if peak is not None and np.isfinite(peak.distance):
        at_peak["log_D"] = math.log(peak.distance)
    return [*points, at_peak]


def _constrainer(priors):
    """Map unconstrained sampler values to parameter values by transforms alone."""
    transforms = {k: dist.biject_to(p.support) for k, p in priors.items()}
    transforms["r"] = dist.biject_to(dist.constraints.positive)

    def constrain(z):
        return {k: transforms[k](v) for k, v in z.items()}

    return constrain


def _population(priors):
    log_L = numpyro.sample("log_L", priors["log_L"])
    log_D = numpyro.sample("log_D", priors["log_D"])
    log_sigma = numpyro.sample("log_sigma", priors["log_sigma"])
    q = numpyro.sample("Q", priors["Q"])
    return log_L, log_D, log_sigma, q


def _latent_model(plx, err, priors):
    """The tutorial's model: every star's distance is a parameter."""
    log_L, log_D, log_sigma, q = _population(priors)
    with numpyro.plate("stars", plx.shape[0]):
        mixture = dist.MixtureGeneral(
            dist.Categorical(probs=jnp.stack([q, 1.0 - q], axis=-1)),
            [
                dist.TransformedDistribution(
                    dist.Normal(log_D, jnp.exp(log_sigma)),
                    dist.transforms.ExpTransform(),
                ),
                dist.Gamma(3.0, jnp.exp(-log_L)),
            ],
        )
        r = numpyro.sample("r", mixture)
        numpyro.sample("plx", dist.Normal(1000.0 / r, err), obs=plx)


def _latent_membership(by_chain, r):
    """Mean over draws of each star's cluster probability given its distance."""
    flat = {k: v.reshape(-1, 1) for k, v in by_chain.items()}
    log_r = np.log(r)
    sigma = np.exp(flat["log_sigma"])
    z = (log_r - flat["log_D"]) / sigma
    # Both densities in r, normalised: the cluster's log-normal and the
    # field's Gamma(3, L).
    log_c = np.log(flat["Q"]) - 0.5 * z * z - np.log(sigma) - log_r - _LN_SQRT_2PI
    length = np.exp(flat["log_L"])
    t = r / length
    log_f = np.log1p(-flat["Q"]) + 2.0 * np.log(t) - t - np.log(2.0 * length)
    return np.mean(np.exp(-np.logaddexp(0.0, log_f - log_c)), axis=0)
