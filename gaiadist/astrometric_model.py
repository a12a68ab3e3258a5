"""Parameters, priors and posterior of the astrometric cluster model.

The likelihood is `gaiadist.astrometric.log_likelihood`; this module lays
its parameters out as one unconstrained vector ``x`` (each parameter mapped
from its prior's support by `numpyro.distributions.biject_to`), adds the
priors and the Jacobians, and finds starting points for the mode search
from the data. Everything is differentiated automatically: a new
parameter is a new entry of `default_priors` and of the likelihood.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist

from .astrometric import (
    AstrometricStars,
    DistanceSeries,
    FieldStars,
    component_log_likelihoods,
    field_log_likelihood,
    log_likelihood,
    selection_log_likelihood,
)
from .peak import ClusterGuess

__all__ = [
    "DERIVED",
    "N_FIELD",
    "PARAMETERS",
    "Layout",
    "data_log_likelihood",
    "default_priors",
    "derive",
    "field_log_density",
    "field_only_log_likelihood",
    "log_density",
    "log_prior",
    "starting_points",
]

#: Gaussians in the field's proper motion mixture.
N_FIELD = 3
#: The parameters, in the order of the unconstrained vector.
PARAMETERS = (
    "log_D",
    "log_depth",
    "Q",
    "log_L",
    "pmra",
    "pmdec",
    "log_dispersion",
    "outlier_share",
    "log_outlier_widen",
    "log_r50",
    "centre_x",
    "centre_y",
    "field_logits",
    "field_pm",
    "log_field_sd",
)
#: What the likelihood takes besides the parameters, and the draws include:
#: ``log_sigma``, the width of the members' ``ln r``, ``log_depth - log_D``;
#: ``field_weights``, the softmax of ``field_logits``.
DERIVED = ("log_sigma", "field_weights")


def default_priors(n_field: int = N_FIELD) -> dict[str, dist.Distribution]:
    """The astrometric model's priors.

    - ``log_D ~ Normal(ln 920, 2)`` and ``log_L ~ Normal(ln 370, 2)`` (pc), as
      for the parallax-only model; ``Q ~ Uniform(0, 1)``;
    - ``log_depth ~ Normal(ln 3, 1)``: the cluster's depth in pc, ``sigma D``,
      with ``sigma`` the width of its members' ``ln r`` (the line-of-sight
      spread of a Plummer sphere of r50 = 3 pc is about that of a Gaussian of
      2.6 pc). Beyond a few hundred parsecs the parallaxes cannot resolve
      the depth, and the posterior is this prior, which the sampler's
      whitening takes exactly; the parallax-only model's ``log_sigma ~
      Normal(0, 2)`` left a posterior cut off where the depth becomes
      resolvable, which took as much of the sampling as all the other
      parameters. The depth is kept apart from ``r50``: tied to it (as deep
      as wide), the members' spread in parallax, which underestimated
      errors inflate, would pull the size on the sky;
    - ``pmra, pmdec ~ Normal(0, 50)`` mas/yr;
    - ``log_dispersion ~ Normal(0, 1.5)``, the velocity dispersion in km/s
      (open clusters have 0.3 to 3);
    - ``outlier_share ~ Uniform(0, 0.5)``, the share of the cluster's stars
      that are outliers, and ``log_outlier_widen ~ Normal(ln 2, 1)``: the
      outliers' dispersion is ``1 + e^k`` times the members' (3 times at
      the prior's median, unbounded above);
    - ``log_r50 ~ Normal(ln 3, 1.5)``, the half-number radius in pc (Hunt &
      Reffert 2023 find 1 to 20 pc for most);
    - ``centre_x, centre_y ~ Normal(0, 0.5)``: the cluster's centre, in half
      widths of the footprint from its centre;
    - the field's mixture: weights the softmax of ``field_logits ~
      Normal(0, 1.5)``, ``field_pm ~ Normal(0, 50)`` mas/yr and
      ``log_field_sd ~ Normal(ln 5, 2)`` (mas/yr) for each of ``n_field``
      Gaussians and both axes. Each Gaussian's parameters are independent
      of the others' a priori, so that a Gaussian left out of the
      likelihood (`gaiadist.astrometric_fit`) leaves a posterior that is
      exactly its Gaussian prior.
    """
    k = int(n_field)
    return {
        "log_D": dist.Normal(math.log(920.0), 2.0),
        "log_depth": dist.Normal(math.log(3.0), 1.0),
        "Q": dist.Uniform(0.0, 1.0),
        "log_L": dist.Normal(math.log(370.0), 2.0),
        "pmra": dist.Normal(0.0, 50.0),
        "pmdec": dist.Normal(0.0, 50.0),
        "log_dispersion": dist.Normal(0.0, 1.5),
        "outlier_share": dist.Uniform(0.0, 0.5),
        "log_outlier_widen": dist.Normal(math.log(2.0), 1.0),
        "log_r50": dist.Normal(math.log(3.0), 1.5),
        "centre_x": dist.Normal(0.0, 0.5),
        "centre_y": dist.Normal(0.0, 0.5),
        "field_logits": dist.Normal(0.0, 1.5).expand((k,)).to_event(1),
        "field_pm": dist.Normal(0.0, 50.0).expand((k, 2)).to_event(2),
        "log_field_sd": dist.Normal(math.log(5.0), 2.0).expand((k, 2)).to_event(2),
    }


class Layout:
    """Where each parameter sits in the unconstrained and constrained vectors.

    Parameters
    ----------
    priors : dict
        One distribution per name of `PARAMETERS`; its event shape is the
        parameter's shape.
    """

    def __init__(self, priors: dict) -> None:
        self.priors = priors
        self.transforms = {k: dist.biject_to(priors[k].support) for k in PARAMETERS}
        self.shapes = {k: tuple(priors[k].event_shape) for k in PARAMETERS}
        self.shapes["log_sigma"] = ()
        self.shapes["field_weights"] = self.shapes["field_logits"]
        self.free_shapes = {
            k: tuple(self.transforms[k].inverse_shape(self.shapes[k]))
            for k in PARAMETERS
        }
        self.size = sum(math.prod(s) for s in self.free_shapes.values())
        self.constrained_size = sum(
            math.prod(self.shapes[k]) for k in PARAMETERS + DERIVED
        )

    def unpack(self, x) -> tuple[dict, jax.Array]:
        """The parameters (and `DERIVED`) from ``x``, and the log Jacobian."""
        params, log_det, i = {}, 0.0, 0
        for k in PARAMETERS:
            n = math.prod(self.free_shapes[k])
            xk = x[i : i + n].reshape(self.free_shapes[k])
            value = self.transforms[k](xk)
            params[k] = value
            log_det = log_det + jnp.sum(
                self.transforms[k].log_abs_det_jacobian(xk, value)
            )
            i += n
        return derive(params), log_det

    def pack(self, params: dict) -> np.ndarray:
        """The unconstrained vector of parameter values (NumPy, float64)."""
        parts = [
            np.asarray(
                self.transforms[k].inv(jnp.asarray(params[k], jnp.float32)), float
            ).reshape(-1)
            for k in PARAMETERS
        ]
        return np.concatenate(parts)

    def index(self, name: str) -> int:
        """Where the scalar parameter ``name`` sits in the unconstrained vector."""
        i = 0
        for k in PARAMETERS:
            if k == name:
                return i
            i += math.prod(self.free_shapes[k])
        raise KeyError(name)

    def flatten(self, params: dict) -> jax.Array:
        """The constrained and derived values as one vector, name after name."""
        return jnp.concatenate(
            [jnp.reshape(params[k], (-1,)) for k in PARAMETERS + DERIVED]
        )

    def split(self, flat: np.ndarray) -> dict:
        """`flatten`'s inverse along the last axis (NumPy, any leading shape)."""
        out, i = {}, 0
        for k in PARAMETERS + DERIVED:
            n = math.prod(self.shapes[k])
            out[k] = flat[..., i : i + n].reshape(*flat.shape[:-1], *self.shapes[k])
            i += n
        return out


def derive(params: dict) -> dict:
    """``params`` with the `DERIVED` values added (any leading shape)."""
    return dict(
        params,
        log_sigma=params["log_depth"] - params["log_D"],
        field_weights=jax.nn.softmax(params["field_logits"], axis=-1),
    )


def log_density(
    x,
    stars: AstrometricStars,
    layout: Layout,
    field_on=None,
    field_stars: FieldStars | None = None,
) -> jax.Array:
    """Log posterior (up to a constant) of the unconstrained vector ``x``.

    ``field_on`` (K,) switches Gaussians of the field's mixture off (0): the
    likelihood leaves them out and their parameters keep their priors.
    ``field_stars`` are stars that are certainly not members, each with the
    field's likelihood alone (`gaiadist.astrometric.field_log_likelihood`),
    and the sum of their distance integrals from its series in ``log_L``
    (`gaiadist.astrometric.DistanceSeries`): that leaves out the cluster's
    terms and the quadratures, which cost the most. For a star whose
    cluster share is below ``e^-20`` the two differ by less than that.
    """
    params, prior = log_prior(x, layout, field_on)
    return prior + data_log_likelihood(params, stars, field_stars)


def data_log_likelihood(
    params: dict, stars: AstrometricStars, field_stars: FieldStars | None = None
) -> jax.Array:
    """The log likelihood of `log_density`, without the priors."""
    if field_stars is None:
        return log_likelihood(params, stars)
    c, f = component_log_likelihoods(params, stars)
    rest = field_log_likelihood(params, field_stars.stars, distance=False)
    return (
        jnp.sum(stars.weight * jnp.logaddexp(c, f))
        + jnp.sum(field_stars.stars.weight * rest)
        + field_stars.distance.value(params["log_L"])
        + selection_log_likelihood(params, stars, field_stars.stars)
    )


def field_log_density(
    x, stars: AstrometricStars, layout: Layout, field_on, distance: DistanceSeries
) -> jax.Array:
    """Log posterior of the field alone: the cluster's share ``Q`` set to 0.

    The model without a cluster, for the detection statistic: every star is
    a field star, its distance integral from ``distance``, the series of
    all the stars' (`gaiadist.astrometric.distance_series`). The cluster's
    parameters in ``x`` keep their priors.
    """
    params, prior = log_prior(x, layout, field_on)
    return prior + field_only_log_likelihood(params, stars, distance)


def field_only_log_likelihood(
    params: dict, stars: AstrometricStars, distance: DistanceSeries
) -> jax.Array:
    """The log likelihood of `field_log_density`, without the priors."""
    alone = dict(params, Q=jnp.zeros_like(params["Q"]))
    rest = field_log_likelihood(alone, stars, distance=False)
    return (
        jnp.sum(stars.weight * rest)
        + distance.value(params["log_L"])
        + selection_log_likelihood({"log_L": params["log_L"]}, stars)
    )


def log_prior(x, layout: Layout, field_on) -> tuple[dict, jax.Array]:
    """The parameters of ``x`` and their log prior, the Jacobian included."""
    params, log_det = layout.unpack(x)
    if field_on is not None:
        params["field_on"] = field_on
    value = sum(layout.priors[k].log_prob(params[k]) for k in PARAMETERS)
    return params, value + log_det


def starting_points(
    stars: AstrometricStars,
    peak: ClusterGuess | None,
    distance: float,
    log_l: float,
    n_field: int = N_FIELD,
    guess: dict | None = None,
    clump: ClusterGuess | None = None,
    runner_up: ClusterGuess | None = None,
) -> list[dict]:
    """Where the mode searches start, as parameter values.

    Parameters
    ----------
    stars : AstrometricStars
        The (unpadded) stars.
    peak : ClusterGuess or None
        The proper motion peak (`gaiadist.peak.proper_motion_peak`).
    distance : float
        The parallax-only model's starting distance (pc), for when the peak
        has none.
    log_l : float
        Starting ``ln L`` of the field.
    n_field : int
        Gaussians of the field's mixture.
    guess : dict, optional
        ``D`` (pc) and ``pmra``, ``pmdec`` (mas/yr) from the user; any may
        be missing.
    clump : ClusterGuess, optional
        The densest clump of proper motions of all the stars
        (``proper_motion_peak(..., contrast=False)``), for a cluster that
        fills the field.
    runner_up : ClusterGuess, optional
        The second clump concentrated on the sky
        (`gaiadist.peak.proper_motion_peaks`): a small cluster among many
        field stars is often second to a fluctuation of the field.

    Returns
    -------
    list of dict
        Five starts: the cluster at the peak (its proper motion and
        distance), compact (r50 2 pc, 0.5 km/s); the same, broad (8 pc,
        2 km/s); the densest clump of proper motions at its own distance
        (or the peak's proper motion at the parallax-only model's
        distance); the user's guess (or the peak with a larger share of
        members); and the runner-up clump, compact (or the peak, broader
        still: 15 pc, 3 km/s). The field's mixture starts from the proper
        motions' median and spread, with Gaussians of half, once and three
        times that spread.
    """
    pm = np.stack([np.asarray(stars.pmra), np.asarray(stars.pmdec)], axis=1)
    mid = np.median(pm, axis=0)
    spread = np.maximum(1.4826 * np.median(np.abs(pm - mid), axis=0), 0.1)
    widths = np.array([0.5, 1.0, 3.0, 6.0, 10.0][:n_field])
    field = {
        "field_logits": np.zeros(n_field),
        "field_pm": np.repeat(mid[None], n_field, axis=0)
        + 0.1 * spread * np.arange(n_field)[:, None],
        "log_field_sd": np.log(widths[:, None] * spread[None]),
        "log_L": log_l,
    }
    if peak is not None and np.isfinite(peak.distance):
        d_peak, pm_peak = peak.distance, (peak.pmra, peak.pmdec)
        q_peak = min(max(3.0 * peak.n_stars / pm.shape[0], 0.02), 0.5)
    else:
        d_peak, pm_peak, q_peak = distance, tuple(mid), 0.1

    def start(d, motion, r50, dispersion, q):
        return {
            "log_D": math.log(d),
            "log_depth": math.log(3.0),
            "Q": q,
            "pmra": float(motion[0]),
            "pmdec": float(motion[1]),
            "log_dispersion": math.log(dispersion),
            "outlier_share": 0.1,
            "log_outlier_widen": math.log(2.0),
            "log_r50": math.log(r50),
            "centre_x": 0.0,
            "centre_y": 0.0,
            **field,
        }

    guess = guess or {}
    third = start(distance, pm_peak, 3.0, 1.0, q_peak)
    if clump is not None and np.isfinite(clump.distance):
        q_clump = min(max(clump.n_stars / pm.shape[0], 0.05), 0.6)
        third = start(clump.distance, (clump.pmra, clump.pmdec), 3.0, 1.0, q_clump)
    points = [
        start(d_peak, pm_peak, 2.0, 0.5, q_peak),
        start(d_peak, pm_peak, 8.0, 2.0, q_peak),
        third,
    ]
    if guess:
        points.append(
            start(
                guess.get("D", d_peak),
                (guess.get("pmra", pm_peak[0]), guess.get("pmdec", pm_peak[1])),
                3.0,
                1.0,
                q_peak,
            )
        )
    else:
        points.append(start(d_peak, pm_peak, 3.0, 1.0, min(3.0 * q_peak, 0.6)))
    if runner_up is not None and np.isfinite(runner_up.distance):
        q_runner = min(max(3.0 * runner_up.n_stars / pm.shape[0], 0.02), 0.5)
        motion = (runner_up.pmra, runner_up.pmdec)
        points.append(start(runner_up.distance, motion, 2.0, 0.5, q_runner))
    else:
        points.append(start(d_peak, pm_peak, 15.0, 3.0, q_peak))
    return points
