"""The astrometric cluster model's sampler: mode search, NUTS, per-star results.

The same scheme as the parallax-only model's (`gaiadist.marginal`): Newton
searches for the posterior mode from several starts, the best by its
Laplace mass, NUTS in the coordinates that the mode's Hessian whitens, and
then each star's membership and distance from a subset of the draws. Here
every derivative is JAX's.
"""

from __future__ import annotations

import math
import time
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from .astrometric import (
    AstrometricStars,
    DistanceSeries,
    FieldStars,
    component_log_likelihoods,
    distance_integrals,
    distance_series,
    membership_and_odds,
    pad_stars,
    take_stars,
)
from .astrometric_model import (
    Layout,
    field_log_density,
    field_only_log_likelihood,
    log_density,
    log_prior,
)
from .marginal import (
    _NEWTON_ITERATIONS,
    ProgressBar,
    best_mode,
    laplace_masses,
    mode_search,
    mode_search_options,
    nuts_program,
    run_chains,
    star_results,
    whitening,
)

__all__ = ["TARGET_ACCEPT", "AstrometricResult", "Sampler", "padded_size"]

#: NUTS's target acceptance. The parallax-only model's 0.65 left divergent
#: transitions in a third of the real fields (54 of 2,000 draws for
#: Berkeley 17, where the members' depth is unresolved); 0.85 left none
#: there, for 1.7 times the leapfrog steps, but 27 of 1,000 on a simulated
#: Pleiades-like field of 8,000 stars, where 0.92 left none (15 % slower).
TARGET_ACCEPT = 0.92
#: Widest Laplace width (unconstrained units) of the whitening map: wider
#: than every prior, all of them proper, so that a parameter the data say
#: nothing of (a Gaussian of the field's mixture left out) is whitened to
#: its prior's width.
_MAX_SD = 100.0
#: Posterior draws for the stars' distance percentiles, at most (the
#: memberships take all of ``num_draws``). An unresolved depth makes each
#: draw's cluster a spike at its own D, which
#: `gaiadist.marginal.star_results` adds to every star's grid, so its cost
#: grows as the square of the draws: 200 took 22 s for 30,000 stars. With
#: 50 the percentiles are within 1 % in probability of the mixture of all
#: draws.
_DISTANCE_DRAWS = 50
#: A star whose log odds of membership at the mode are below minus this
#: (nats) may count as a field star while NUTS samples
#: (`gaiadist.astrometric_model.log_density`'s ``field_stars``). Over the
#: posterior the odds move by a few nats at most, so that such a star's
#: share of the cluster stays below about e^-15, and all of them together
#: change the log posterior by far less than a nat; `Sampler.run` measures
#: the largest share at the draws.
_FIELD_ONLY = 20.0
#: NUTS takes that shortcut where at most a quarter, an eighth or a
#: sixteenth (the smallest that holds them) of a field's padded size has
#: odds above ``-_FIELD_ONLY``: the mixture for that share of the stars
#: (those of highest odds), the field alone for the rest. Each share is one
#: more compilation per size, worth it on large fields: value and gradient
#: at 30,000 stars, of which a fifth are above, take half the time.
_MIXED_SHARES = (16, 8, 4)
#: The smallest padded size for that shortcut. Its programs (a mode search
#: and NUTS on the two parts) take longer to compile than they save on
#: smaller fields: a simulated 3,000-star cone took 75 s to fit the first
#: time with them and 34 s without, for 4.9 s and 9.4 s once compiled.
_SHORTCUT_SIZE = 6144
#: Newton steps of the first mode searches on a field of at least
#: `_SHORTCUT_SIZE` with all the stars' mixtures. They then go on with the
#: stars certain to be field stars at every start's point set apart (the
#: log odds of each star at the most favourable point), which costs a
#: quarter as much a step. From four steps the searches are within tens of
#: nats of their modes on a 30,000-star cone (2.4e5 nats in all).
_FIRST_STEPS = 4
_ALL_STEPS = _NEWTON_ITERATIONS
#: Starts whose log posterior after those steps is more than this (nats)
#: below the best's go on with all the stars: on a simulated Pleiades-like
#: field of 6,000 stars the starts bound for the cluster were within 400
#: nats of each other, the one bound for the field's clump 4,500 below.
_NEAR = 1000.0
#: Half width of the interval in ``ln L`` over which the field stars'
#: distance integrals are a series (`gaiadist.astrometric.DistanceSeries`):
#: this many of its posterior widths at the mode, within `_SERIES_MIN` and
#: `_SERIES_MAX` (the mode search may not have ended yet).
#: NUTS starts within a few widths; beyond, the series' quadratic
#: continuation pulls back.
_SERIES_WIDTHS = 30.0
_SERIES_MIN, _SERIES_MAX = 0.05, 2.0
#: The field stars' distance percentiles (`_distances`) leave the cluster
#: out where their membership stayed below this at every draw, and take
#: this many of the draws: the field's length scale, all that varies
#: between them, is pinned down to a per cent or less by thousands of stars.
_FIELD_SHARE = 1e-6
_FIELD_DRAWS = 10
#: Half width (in ``ln L``) of the series of all the stars' distance
#: integrals about the mode's ``ln L``, for the model of the field alone
#: (`Sampler._detection`): a cluster's members taken back into the field
#: move its ``L`` by far less.
_DETECTION_SERIES = 1.0
#: The smallest padded size of a field's stars.
_MIN_SIZE = 512


def padded_size(n: int) -> int:
    """``n`` rounded up to ``2^k`` or ``1.5 * 2^k`` (at least `_MIN_SIZE`).

    Two sizes per factor of two, fewer than the parallax-only model's
    eight: this model's programs take about 20 s to compile (half of it the
    mode search, whose Hessians are JAX's), so that a survey of fields of
    every size compiles a dozen times rather than fifty, for at most half
    as much work again per evaluation.
    """
    size = _MIN_SIZE
    while size < n:
        size = size * 3 // 2 if size & (size - 1) == 0 else size * 4 // 3
    return size


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
    p_member, p_outlier : `numpy.ndarray`
        Each star's probabilities of being a member and a cluster outlier
        (`gaiadist.astrometric.membership`), averaged over the draws used.
    quantiles : `numpy.ndarray`
        ``(n, 3)`` distance percentiles (pc).
    check : float
        `gaiadist.marginal.star_results`'s quadrature check (nats).
    modes : `numpy.ndarray`
        Where each mode search ended, unconstrained, ``(k, p)``, with every
        Gaussian of the field's mixture.
    log_p, hessians : `numpy.ndarray`
        The log posterior and the Hessian of its negative there.
    field_on : `numpy.ndarray`
        Which Gaussians of the field's mixture are used (1) or left out (0).
    field_only : int
        Stars taken for field stars after the first mode search.
    field_only_p_max : float
        Their largest probability of belonging to the cluster, as a member
        or an outlier, at any of the draws (exact; 0 if none).
    detection : float
        The log likelihood ratio of the model with a cluster to the field's
        alone, each at its mode (nats; `Sampler._detection`).
    field_alone_log_l : float
        ``ln(L / pc)`` of the field alone at its mode.
    mode_dispersion, mode_r50 : float
        The cluster's velocity dispersion (km/s) and r50 (pc) at the mode.
    mode_members : float
        The sum of the stars' memberships at the mode.
    detected : bool
        False where ``detection`` was below the threshold, the mode's
        dispersion above the largest a cluster may have or its members
        fewer than the fewest: then nothing was sampled.
    """

    samples: dict
    diverging: np.ndarray
    seconds: float
    p_member: np.ndarray
    p_outlier: np.ndarray
    quantiles: np.ndarray
    check: float
    modes: np.ndarray
    log_p: np.ndarray
    hessians: np.ndarray
    field_on: np.ndarray
    field_only: int
    field_only_p_max: float
    detection: float
    field_alone_log_l: float
    mode_dispersion: float
    mode_r50: float
    mode_members: float
    detected: bool


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

    def density(self, x, data):
        """The log posterior of ``data = (stars, field_on, field_stars)``.

        `gaiadist.astrometric_model.log_density`; ``field_stars`` may be None.
        """
        stars, field_on, field_stars = data
        return log_density(x, stars, self.layout, field_on, field_stars)

    def _values(self, x):
        """Constrained, flattened parameter values of ``x`` (..., p)."""
        flat = x.reshape(-1, x.shape[-1])
        out = jax.vmap(lambda xi: self.layout.flatten(self.layout.unpack(xi)[0]))(flat)
        return out.reshape(*x.shape[:-1], out.shape[-1])

    def _compiled(self, kind, *settings):
        key = (kind, *settings)
        if key not in self._cache:
            if kind == "modes":

                def modes(starts, stars, field_on, field_stars, steps):
                    # Each start with its own Gaussians of the field's mixture
                    # and its own number of Newton steps (0: left as it is).
                    def one(args):
                        x0, on, n_steps = args
                        found = mode_search(
                            self.density, x0[None], (stars, on, field_stars), n_steps
                        )
                        return jax.tree.map(lambda a: a[0], found)

                    return jax.lax.map(one, (starts, field_on, steps))

                self._cache[key] = jax.jit(
                    modes, compiler_options=mode_search_options()
                )
            elif kind == "nuts":
                num_warmup, num_samples, progress = settings
                bar = ProgressBar(num_warmup + num_samples) if progress else None
                run = nuts_program(
                    self.density,
                    self._values,
                    num_warmup,
                    num_samples,
                    bar,
                    target_accept=TARGET_ACCEPT,
                )
                self._cache[key] = (run, bar)
            elif kind == "field_modes":

                def field_modes(starts, stars, field_on, distance):
                    def density(x, data):
                        return field_log_density(x, *data)

                    data = (stars, self.layout, field_on, distance)
                    modes, log_p, _ = mode_search(density, starts, data)
                    log_l = jax.vmap(
                        lambda x: field_only_log_likelihood(
                            self.layout.unpack(x)[0], stars, distance
                        )
                    )(modes)
                    return modes, log_p, log_l

                self._cache[key] = jax.jit(
                    field_modes, compiler_options=mode_search_options()
                )
            elif kind == "series":
                self._cache[key] = jax.jit(distance_integrals)
            elif kind == "odds":

                def odds(x, stars, field_on):
                    params = dict(self.layout.unpack(x)[0], field_on=field_on)
                    c, f = component_log_likelihoods(params, stars)
                    return c - f

                self._cache[key] = jax.jit(odds)
            else:  # "members"

                def members(flat_draws, stars, field_on):
                    def one(flat):
                        params = dict(self.layout.split(flat), field_on=field_on)
                        return membership_and_odds(params, stars)

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
        detection_threshold: float | None = None,
        max_dispersion: float | None = None,
        min_members: float | None = None,
        progress: bool = False,
    ) -> AstrometricResult:
        """Find the mode, sample around it and compute the per-star results.

        ``stars`` are the unpadded stars, ``starts`` the unconstrained
        starting points of the mode searches, ``(k, p)``. Where the
        detection statistic (`_detection`) is below ``detection_threshold``,
        the mode's velocity dispersion is above ``max_dispersion`` (km/s; a
        population of the field, not a cluster), or the sum of the stars'
        memberships at the mode is below ``min_members`` (a wide binary or
        a multiple star), there is no cluster: nothing is sampled, the
        draws are NaN, every membership 0 and the distances the field's
        alone.
        """
        dtype = jnp.result_type(float)
        start = time.perf_counter()
        searches, data, field_only, final = self._field_components(
            stars, jnp.asarray(starts, dtype), dtype
        )
        modes, log_p, hessians = searches
        field_on = np.asarray(data[1])
        detection, field_mode = self._detection(stars, starts, data, final[0], dtype)
        found = dict(
            modes=modes,
            log_p=log_p,
            hessians=hessians,
            field_on=field_on,
            detection=detection,
            field_alone_log_l=float(
                self.layout.unpack(jnp.asarray(field_mode))[0]["log_L"]
            ),
        )
        at_mode = self.layout.unpack(jnp.asarray(final[0]))[0]
        found["mode_dispersion"] = math.exp(float(at_mode["log_dispersion"]))
        found["mode_r50"] = math.exp(float(at_mode["log_r50"]))
        found["mode_members"] = self._members_at(stars, final[0], data[1], dtype)
        weak = detection_threshold is not None and not detection >= detection_threshold
        broad = max_dispersion is not None and found["mode_dispersion"] > max_dispersion
        few = min_members is not None and not found["mode_members"] >= min_members
        if weak or broad or few:
            return self._no_cluster(stars, num_chains, num_samples, start, found)
        centre, chol = whitening(*final, starts[0], max_sd=_MAX_SD)
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
        unpadded = jax.tree.map(lambda a: jnp.asarray(a, dtype), stars)
        member, outlier, odds = self._compiled("members")(
            jnp.asarray(chosen, dtype), unpadded, data[1]
        )
        member, outlier = np.asarray(member, float), np.asarray(outlier, float)
        # How near to the cluster the stars taken for field stars came.
        p_field_only = (member + outlier)[:, field_only]
        nearest = float(np.max(p_field_only)) if p_field_only.size else 0.0
        params = self.layout.split(chosen[:_DISTANCE_DRAWS])
        theta = np.stack(
            [params[k] for k in ("log_L", "log_D", "log_sigma", "Q")], axis=1
        )
        quantiles, check = _distances(
            stars,
            theta.astype(dtype),
            np.asarray(odds, dtype)[:_DISTANCE_DRAWS],
            field_only if nearest < _FIELD_SHARE else np.zeros_like(field_only),
        )
        return AstrometricResult(
            samples=samples,
            diverging=np.asarray(diverging),
            seconds=seconds,
            p_member=np.mean(member, axis=0),
            p_outlier=np.mean(outlier, axis=0),
            quantiles=quantiles,
            check=check,
            field_only=int(np.count_nonzero(field_only)),
            field_only_p_max=nearest,
            detected=True,
            **found,
        )

    def _no_cluster(self, stars, num_chains, num_samples, start, found):
        """The result where the field alone explains the stars.

        NaN draws, shape ``(num_chains, num_samples)``; memberships 0; the
        distances from the field's EDSD at its mode.
        """
        n = stars.plx.shape[0]
        shape = (num_chains, num_samples, self.layout.constrained_size)
        samples = self.layout.split(np.full(shape, np.nan))
        # (The cluster's D and width are placeholders: `_distances` gives
        # it a share of 1e-30 for these stars.)
        log_l = found["field_alone_log_l"]
        theta = np.array([[log_l, log_l + math.log(2.0), 0.0, 0.0]])
        dtype = jnp.result_type(float)
        quantiles, check = _distances(
            stars, theta.astype(dtype), np.zeros((1, n), dtype), np.ones(n, bool)
        )
        return AstrometricResult(
            samples=samples,
            diverging=np.zeros(shape[:2], bool),
            seconds=time.perf_counter() - start,
            p_member=np.zeros(n),
            p_outlier=np.zeros(n),
            quantiles=quantiles,
            check=check,
            field_only=n,
            field_only_p_max=0.0,
            detected=False,
            **found,
        )

    def _field_components(self, stars, starts, dtype):
        """Which Gaussians of the field's mixture the data support, and the modes.

        The mode search runs with every Gaussian; on a large field, for
        `_FIRST_STEPS` steps with all the stars, then on from there with the
        certain field stars apart (`_sampler_data`), but for the starts far
        below the best (`_NEAR`), which go on with all the stars. Then from its best
        mode, one search per start slot, with the same stars apart: one
        with the same Gaussians, the others with one or two of least weight
        left out (`_removals`); the best by its Laplace mass
        (the evidence) is kept. That repeats only while the best left out
        the most tried. A Gaussian the field does not need would otherwise
        hold a few stars with its mean and width free, a funnel that NUTS
        crosses in steps a tenth as long (on a simulated field of two
        Gaussians, with three in the model: step size 0.03, 190 leapfrog
        steps per draw). Left out, its parameters keep their priors, and the
        compiled programs stay the same.

        Returns the modes, log posteriors and Hessians of the first search
        (one per start, comparable with each other), the sampler's data
        ``(stars, field_on, field_stars)``, which of ``stars`` are in
        ``field_stars``, and the best mode of the last search with its
        Hessian.
        """
        compiled = self._compiled("modes")

        def search(points, data, field_on, field_stars, steps=_ALL_STEPS):
            steps = np.broadcast_to(steps, (points.shape[0],)).astype(np.int32)
            found = compiled(
                points, data, jnp.asarray(field_on, dtype), field_stars, steps
            )
            return tuple(np.asarray(a, float) for a in found)

        k = self.layout.shapes["field_weights"][0]
        n = stars.plx.shape[0]
        padded = jax.tree.map(jnp.asarray, pad_stars(stars, padded_size(n), dtype))
        on = np.ones(k)
        slots = starts.shape[0]
        every = np.tile(on, (slots, 1))
        large = padded_size(n) >= _SHORTCUT_SIZE
        first = search(
            starts, padded, every, None, _FIRST_STEPS if large else _ALL_STEPS
        )
        best, hessian = best_mode(*first)
        _, chol = whitening(best, hessian, starts[0], max_sd=_MAX_SD)
        # The starts still far below the best (on their way to another
        # mode) go on with every star, so that the stars they would take
        # for members are not set apart; the others decide which are.
        log_p = np.where(np.isfinite(first[1]), first[1], -np.inf)
        near = log_p >= np.max(log_p) - _NEAR
        (part, _, field_stars), field_only = self._sampler_data(
            stars, padded, best, on, chol, dtype, points=first[0][near]
        )
        if large:
            points = jnp.asarray(first[0], dtype)
            on_part = search(points, part, every, field_stars, _ALL_STEPS * near)
            if not near.all():
                on_all = search(points, padded, every, None, _ALL_STEPS * ~near)
                on_part = tuple(
                    np.where(near.reshape(-1, *[1] * (a.ndim - 1)), a, b)
                    for a, b in zip(on_part, on_all, strict=True)
                )
            first = on_part
            best, hessian = best_mode(*first)
        while True:
            weights = np.asarray(
                self.layout.unpack(jnp.asarray(best))[0]["field_weights"]
            )
            trials = [on] + _removals(on, weights, slots - 1)
            if len(trials) == 1:
                break
            trial = np.array(trials + trials[-1:] * (slots - len(trials)))
            again = jnp.broadcast_to(jnp.asarray(best, dtype), starts.shape)
            result = search(again, part, trial, field_stars)
            j = int(np.argmax(laplace_masses(result[1], result[2])))
            best, hessian = result[0][j], result[2][j]
            on = trial[j]
            left_out = [np.count_nonzero(t == 0) for t in trials]
            if left_out[j] < max(left_out):
                break
        data = (part, jnp.asarray(on, dtype), field_stars)
        return first, data, field_only, (best, hessian)

    def _detection(self, stars, starts, data, mode, dtype):
        """The log likelihood ratio of the cluster's model to the field's alone.

        ``data`` are the sampler's ``(stars, field_on, field_stars)`` and
        ``mode`` its mode (unconstrained). The field alone, every star a
        field star (`gaiadist.astrometric_model.field_log_density`), is
        found by Newton searches from ``mode`` and from ``starts``, with
        every Gaussian of the mixture; its stars' distance integrals are a
        series in ``ln L`` about the mode's. Returns the ratio (nats, the
        log likelihoods at the two modes) and the field's mode.
        """
        # The log likelihood at the mode: the mode search's program, no step
        # taken, less the prior.
        part, on_, field_stars = data
        k = starts.shape[0]
        _, at_mode, _ = self._compiled("modes")(
            jnp.broadcast_to(jnp.asarray(mode, dtype), starts.shape),
            part,
            jnp.broadcast_to(on_, (k, on_.shape[0])),
            field_stars,
            np.zeros(k, np.int32),
        )
        prior = log_prior(jnp.asarray(mode, dtype), self.layout, on_)[1]
        with_cluster = float(at_mode[0]) - float(prior)
        n = stars.plx.shape[0]
        padded = jax.tree.map(jnp.asarray, pad_stars(stars, padded_size(n), dtype))
        i = self.layout.index("log_L")
        series = distance_series(
            lambda log_l: self._compiled("series")(jnp.asarray(log_l, dtype), padded),
            float(mode[i]),
            _DETECTION_SERIES,
        )
        points = jnp.concatenate(
            [jnp.asarray(mode, dtype)[None], jnp.asarray(starts, dtype)]
        )
        on = jnp.ones(self.layout.shapes["field_weights"], dtype)
        modes, _, log_l = self._compiled("field_modes")(
            points,
            padded,
            on,
            DistanceSeries(*(jnp.asarray(a, dtype) for a in series)),
        )
        log_l = np.asarray(log_l, float)
        best = int(np.nanargmax(np.where(np.isfinite(log_l), log_l, -np.inf)))
        return with_cluster - log_l[best], np.asarray(modes[best], float)

    def _members_at(self, stars, mode, field_on, dtype) -> float:
        """The sum of the stars' memberships at ``mode`` (unconstrained)."""
        n = stars.plx.shape[0]
        padded = jax.tree.map(jnp.asarray, pad_stars(stars, padded_size(n), dtype))
        odds = self._compiled("odds")(jnp.asarray(mode, dtype), padded, field_on)
        odds = np.asarray(odds, float)[:n]
        return float(np.sum(np.exp(-np.logaddexp(0.0, -odds[np.isfinite(odds)]))))

    def _sampler_data(self, stars, padded, mode, on, chol, dtype, points=None):
        """The sampler's data, with the certain field stars apart where that pays.

        The stars are ordered by their log odds of membership at ``mode``
        (the largest of those at ``mode`` and at ``points``, if given);
        where the padded size is at least `_SHORTCUT_SIZE` and at most a
        share of it (`_MIXED_SHARES`) are
        above ``-_FIELD_ONLY``, that share of the stars of highest odds keeps
        the mixture and the rest go into ``field_stars``
        (`gaiadist.astrometric.FieldStars`), their distance integrals a
        series in ``ln L`` about the mode (its width there from the
        whitening matrix ``chol``). Returns ``(stars, field_on,
        field_stars)`` and which of ``stars`` are field stars.
        """
        n = stars.plx.shape[0]
        size = padded.plx.shape[0]
        on_ = jnp.asarray(on, dtype)
        field_only = np.zeros(n, bool)
        if size < _SHORTCUT_SIZE:
            return (padded, on_, None), field_only
        at = [mode] if points is None else [mode, *points]
        odds = np.max(
            [
                np.asarray(
                    self._compiled("odds")(jnp.asarray(x, dtype), padded, on_), float
                )[:n]
                for x in at
            ],
            axis=0,
        )
        odds = np.where(np.isnan(odds), np.inf, odds)
        above = np.count_nonzero(odds > -_FIELD_ONLY)
        tops = [size // k for k in _MIXED_SHARES if above <= size // k < n]
        if not tops:
            return (padded, on_, None), field_only
        top = tops[0]
        order = np.argsort(-odds, kind="stable")
        field_only[order[top:]] = True

        def part(index, length):
            return jax.tree.map(
                jnp.asarray, pad_stars(take_stars(stars, index), length, dtype)
            )

        rest = part(order[top:], size - top)
        i = self.layout.index("log_L")
        sd = float(np.sqrt(np.sum(np.asarray(chol, float)[i] ** 2)))
        series = distance_series(
            lambda log_l: self._compiled("series")(jnp.asarray(log_l, dtype), rest),
            float(mode[i]),
            float(np.clip(_SERIES_WIDTHS * sd, _SERIES_MIN, _SERIES_MAX)),
        )
        field_stars = FieldStars(
            rest, DistanceSeries(*(jnp.asarray(a, dtype) for a in series))
        )
        return (part(order[:top], top), on_, field_stars), field_only


def _distances(stars, theta, odds, field):
    """Each star's distance percentiles (pc) and the quadrature check.

    `gaiadist.marginal.star_results` from the draws ``theta`` (log_L,
    log_D, log_sigma, Q) with the ``odds`` (draws, n) the other
    observables add, for the stars that ``field`` does not mark; for those
    it marks, from the first `_FIELD_DRAWS` draws of the field alone (the
    cluster's share set to 1e-30, its width to one the grid resolves, so
    that the costly nodes of a narrow cluster are not laid). The check is
    the sum of the two parts' (a bound on that of all the stars).
    """
    plx, err = np.asarray(stars.plx, theta.dtype), np.asarray(stars.err, theta.dtype)
    quantiles = np.empty((plx.shape[0], 3))
    check = 0.0
    alone = theta[:_FIELD_DRAWS].copy()
    alone[:, 1] = np.mean(alone[:, 1])
    alone[:, 2], alone[:, 3] = np.log(0.1), 1e-30
    for part, draws in ((~field, theta), (field, alone)):
        if part.any():
            _, quantiles[part], part_check = star_results(
                plx[part], err[part], draws, odds[: draws.shape[0], part]
            )
            check += part_check
    return quantiles, check


def _removals(on: np.ndarray, weights: np.ndarray, slots: int) -> list[np.ndarray]:
    """Which Gaussians of the field's mixture to try without, one per slot.

    From ``on`` (1 for a Gaussian used), with the used ones ranked by
    ``weights`` from the least: the least left out, the two least, the
    second least, the least and the third; those that leave at least one
    Gaussian, at most ``slots`` of them.
    """
    used = [int(i) for i in np.argsort(weights) if on[i] > 0]
    out = []
    for picks in ((0,), (0, 1), (1,), (0, 2)):
        if max(picks) < len(used) and len(picks) < len(used):
            trial = on.copy()
            trial[[used[p] for p in picks]] = 0.0
            out.append(trial)
    return out[:slots]
