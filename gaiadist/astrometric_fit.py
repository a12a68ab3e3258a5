"""The astrometric cluster model's sampler: mode search, NUTS, per-star results.

The same scheme as the parallax-only model's (`gaiadist.marginal`): Newton
searches for the posterior mode from several starts, the best by its
Laplace mass, NUTS in the coordinates that the mode's Hessian whitens, and
then each star's membership and distance from a subset of the draws. Here
every derivative is JAX's.
"""

from __future__ import annotations

import time
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from .astrometric import AstrometricStars, membership_and_odds, pad_stars
from .astrometric_model import Layout, log_density
from .marginal import (
    ProgressBar,
    best_mode,
    mode_search,
    mode_search_options,
    nuts_program,
    padded_size,
    run_chains,
    star_results,
    whitening,
)

__all__ = ["AstrometricResult", "Sampler"]

#: Stars per call of the per-draw membership program.
_MEMBER_BLOCK = 8


class AstrometricResult(NamedTuple):
    """What `Sampler.run` returns.

    Attributes
    ----------
    samples : dict
        Draws of every parameter, shape ``(chains, draws, ...)``.
    diverging : `numpy.ndarray`
        Divergent transitions, ``(chains, draws)``.
    seconds : float
        Wall time of the mode search and the sampling.
    p_member : `numpy.ndarray`
        Each star's membership, averaged over the draws used.
    quantiles : `numpy.ndarray`
        ``(n, 3)`` distance percentiles (pc).
    check : float
        `gaiadist.marginal.star_results`'s quadrature check (nats).
    modes : `numpy.ndarray`
        Where each mode search ended, unconstrained, ``(k, p)``.
    log_p, hessians : `numpy.ndarray`
        The log posterior and the Hessian of its negative there.
    """

    samples: dict
    diverging: np.ndarray
    seconds: float
    p_member: np.ndarray
    quantiles: np.ndarray
    check: float
    modes: np.ndarray
    log_p: np.ndarray
    hessians: np.ndarray


class Sampler:
    """The compiled programs of the astrometric model for one set of priors.

    Parameters
    ----------
    layout : Layout
        The parameters and their priors.
    """

    def __init__(self, layout: Layout) -> None:
        self.layout = layout
        self._cache = {}

    def density(self, x, stars):
        """`gaiadist.astrometric_model.log_density` with this layout."""
        return log_density(x, stars, self.layout)

    def _values(self, x):
        """Constrained, flattened parameter values of ``x`` (..., p)."""
        flat = x.reshape(-1, x.shape[-1])
        out = jax.vmap(lambda xi: self.layout.flatten(self.layout.unpack(xi)[0]))(flat)
        return out.reshape(*x.shape[:-1], out.shape[-1])

    def _compiled(self, kind, *settings):
        key = (kind, *settings)
        if key not in self._cache:
            if kind == "modes":
                self._cache[key] = jax.jit(
                    lambda starts, stars: mode_search(self.density, starts, stars),
                    compiler_options=mode_search_options(),
                )
            elif kind == "nuts":
                num_warmup, num_samples, progress = settings
                bar = ProgressBar(num_warmup + num_samples) if progress else None
                run = nuts_program(
                    self.density, self._values, num_warmup, num_samples, bar
                )
                self._cache[key] = (run, bar)
            else:  # "members"

                def members(flat_draws, stars):
                    def one(flat):
                        return membership_and_odds(self.layout.split(flat), stars)

                    return jax.lax.map(one, flat_draws)

                self._cache[key] = jax.jit(members)
        return self._cache[key]

    def run(
        self,
        stars: AstrometricStars,
        starts: np.ndarray,
        *,
        seed: int,
        num_warmup: int,
        num_samples: int,
        num_chains: int,
        num_draws: int,
        progress: bool = False,
    ) -> AstrometricResult:
        """Find the mode, sample around it and compute the per-star results.

        ``stars`` are the unpadded stars, ``starts`` the unconstrained
        starting points of the mode searches, ``(k, p)``.
        """
        dtype = jnp.result_type(float)
        n = stars.plx.shape[0]
        data = jax.tree.map(jnp.asarray, pad_stars(stars, padded_size(n), dtype))
        start = time.perf_counter()
        modes, log_p, hessians = (
            np.asarray(a, float)
            for a in self._compiled("modes")(jnp.asarray(starts, dtype), data)
        )
        centre, chol = whitening(*best_mode(modes, log_p, hessians), starts[0])
        run, bar = self._compiled("nuts", num_warmup, num_samples, progress)
        keys = np.asarray(jax.random.split(jax.random.PRNGKey(seed), num_chains))
        z0 = np.random.default_rng(seed).normal(size=(num_chains, starts.shape[1]))
        flat, diverging = run_chains(
            run,
            keys,
            z0.astype(dtype),
            data,
            jnp.asarray(centre, dtype),
            jnp.asarray(chol, dtype),
            progress=bar,
        )
        seconds = time.perf_counter() - start
        flat = np.asarray(flat, float)
        samples = self.layout.split(flat)
        # The per-star results from a subset of the draws.
        every = flat.reshape(-1, flat.shape[-1])
        pick = np.random.default_rng(seed).choice(
            every.shape[0], size=min(num_draws, every.shape[0]), replace=False
        )
        chosen = every[pick]
        unpadded = jax.tree.map(jnp.asarray, pad_stars(stars, n, dtype))
        member, odds = self._compiled("members")(jnp.asarray(chosen, dtype), unpadded)
        params = self.layout.split(chosen)
        theta = np.stack(
            [params[k] for k in ("log_L", "log_D", "log_sigma", "Q")], axis=1
        )
        _, quantiles, check = star_results(
            np.asarray(stars.plx, dtype),
            np.asarray(stars.err, dtype),
            theta.astype(dtype),
            np.asarray(odds, dtype),
        )
        return AstrometricResult(
            samples=samples,
            diverging=np.asarray(diverging),
            seconds=seconds,
            p_member=np.mean(np.asarray(member, float), axis=0),
            quantiles=quantiles,
            check=check,
            modes=modes,
            log_p=log_p,
            hessians=hessians,
        )
