"""A straight line through data with outliers: the mixture model in miniature.

The cluster model of `gaiadist.ClusterDistance` is a two-component mixture:
every star belongs to the cluster with probability ``Q`` or to the field.
This module holds the smallest useful example of the same idea, the robust
line fit of the NumPyro tutorial gaiadist grew from (after Hogg, Bovy & Lang
2010): points follow a line with probability ``Q``, or a broad Gaussian
"background" otherwise, and the sampler learns the line, the background and
``Q`` together. The documentation's first tutorial runs it.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from numpyro.infer import MCMC, NUTS

__all__ = ["fit_line", "line_data", "line_mixture_model"]


def line_data(seed: int = 12) -> dict[str, np.ndarray]:
    """The tutorial's simulated data: 15 points on ``y = x``, some replaced.

    Points are drawn at uniform ``x`` in (-2, 2) with errors 0.2 around the
    line of slope 1 and intercept 0; each is then, with probability 0.2,
    replaced by an outlier from a unit Gaussian around zero (its error added
    in quadrature). NumPy's legacy generator with ``seed`` 12 reproduces the
    tutorial's points exactly.

    Returns
    -------
    dict
        ``x``, ``y``, ``yerr`` and ``outlier`` (bool), arrays of 15.
    """
    rng = np.random.RandomState(seed)
    x = np.sort(rng.uniform(-2, 2, 15))
    yerr = np.full_like(x, 0.2)
    y = 1.0 * x + 0.0 + yerr * rng.randn(x.size)
    outlier = rng.rand(x.size) > 0.8
    y[outlier] = 0.0 + np.sqrt(1.0 + yerr[outlier] ** 2) * rng.randn(outlier.sum())
    return {"x": x, "y": y, "yerr": yerr, "outlier": outlier}


def line_mixture_model(x, yerr, y=None) -> None:
    """NumPyro model: a line (angle ``theta``, ``b_perp``) or a background.

    The line is parameterised by its angle above the horizontal and its
    perpendicular offset, ``m = tan(theta)`` and ``b = b_perp / cos(theta)``;
    the background is Gaussian with a free mean and extra width; ``Q`` is the
    probability that a point is on the line.
    """
    theta = numpyro.sample("theta", dist.Uniform(-0.5 * jnp.pi, 0.5 * jnp.pi))
    b_perp = numpyro.sample("b_perp", dist.Normal(0.0, 1.0))
    m = numpyro.deterministic("m", jnp.tan(theta))
    b = numpyro.deterministic("b", b_perp / jnp.cos(theta))
    bg_mean = numpyro.sample("bg_mean", dist.Normal(0.0, 1.0))
    bg_sigma = numpyro.sample("bg_sigma", dist.HalfNormal(3.0))
    q = numpyro.sample("Q", dist.Uniform(0.0, 1.0))
    components = [
        dist.Normal(m * x + b, yerr),
        dist.Normal(bg_mean, jnp.sqrt(bg_sigma**2 + yerr**2)),
    ]
    which = dist.Categorical(probs=jnp.stack([q, 1.0 - q]))
    with numpyro.plate("data", len(x)):
        numpyro.sample("obs", dist.MixtureGeneral(which, components), obs=y)


def fit_line(
    data: dict | None = None,
    *,
    seed: int = 3,
    num_warmup: int = 2000,
    num_samples: int = 2000,
    num_chains: int = 2,
) -> MCMC:
    """Sample `line_mixture_model` with NUTS, with the tutorial's settings.

    Returns the `numpyro.infer.MCMC` object; ``arviz.from_numpyro`` turns it
    into an InferenceData for summaries and plots.
    """
    data = line_data() if data is None else data
    mcmc = MCMC(
        NUTS(line_mixture_model),
        num_warmup=num_warmup,
        num_samples=num_samples,
        num_chains=num_chains,
        chain_method="vectorized",
        progress_bar=False,
    )
    mcmc.run(
        jax.random.PRNGKey(seed),
        jnp.asarray(data["x"]),
        jnp.asarray(data["yerr"]),
        y=jnp.asarray(data["y"]),
    )
    return mcmc
