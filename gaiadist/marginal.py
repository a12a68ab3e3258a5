"""The cluster model with every star's distance integrated out.

`ClusterDistance` samples only the four population parameters, in the
unconstrained space ``x = (log_L, log_D, log_sigma, logit Q)`` (or whatever
`numpyro.distributions.biject_to` gives for the priors' supports). Two things
make that fast:

- Whitening. The posterior of ``log_D`` is a thousand times narrower than
  that of ``log_sigma`` (sd 0.0012 against 0.085 for M67), and NUTS adapts
  its mass matrix with a shrinkage towards ``1e-3`` times the identity, which
  swamps such narrow directions and forces tiny steps. So the posterior mode
  and Hessian are found first (a Laplace approximation: damped Newton steps
  on the same log density, from a few starting points) and the sampler works
  in ``z`` with ``x = mode + C z``, ``C C^T`` the inverse Hessian: a nearly
  standard normal, explored in a few leapfrog steps per draw.
- Padding. Star arrays are padded to a few sizes per factor of two, with a
  zero weight on the padding, and the compiled sampler is kept by
  `ClusterDistance`, so fitting cluster after cluster compiles only when the
  size class changes.
"""

from __future__ import annotations

import functools
import math
import threading
from concurrent.futures import ThreadPoolExecutor

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import logsumexp
from numpyro.infer.hmc import hmc
from tqdm import tqdm

from .likelihood import (
    EDSDLogPrior,
    GaussianLogPrior,
    _log_likelihood,
    _log_likelihood_derivatives,
    log_marginal_likelihood,
    log_marginal_likelihood_fast,
    quadrature_nodes,
)
from .population import POPULATION, log_density_terms
from .posterior import SIGMA_PROBS

__all__ = [
    "POPULATION",
    "best_mode",
    "laplace",
    "laplace_masses",
    "mode_search",
    "mode_search_options",
    "pad",
    "padded_stars",
    "padded_size",
    "star_results",
    "star_chunk",
    "nuts_program",
    "run_chains",
    "ProgressBar",
    "to_parameters",
    "whitening",
]

#: NUTS's target acceptance. Near a standard normal in four dimensions 0.65
#: (optimal for HMC) gives steps of about 1 and three leapfrog steps per
#: draw; 0.8 doubles the work per effective draw.
TARGET_ACCEPT = 0.65
_MAX_SD = 10.0  # largest Laplace width accepted, in unconstrained units
_NEWTON_ITERATIONS = 100
_NEWTON_TOLERANCE = 1e-8  # nats: stop when a step gains less
_MAX_STEP = 2.0  # largest Newton step in any unconstrained coordinate
_N_STEP_SIZES = 12  # step lengths tried per Newton step: 1, 1/2, ..., 1/2^11
_DRAW_BLOCK = 8  # posterior draws per step of the per-star program
#: Widest cluster component (sd in ln r) whose per-star CDF is expanded
#: about its peak rather than integrated along the grid.
_NARROW = 0.1
#: Narrowest cluster grid (in ln r) on which the draws' cluster integrals are
#: summed: float32 nodes near ln r ~ 7 are 5e-7 apart, which costs 1e-5 in
#: p_member at a width of 0.0016 and 4e-6 at 0.003.
_GRID_MIN_WIDTH = 0.004
_N_NEWTON_PEAK = 3
# Largest terms of that expansion accepted: the peak found (c1) and the
# neglected terms (c3^3, c3 c4, c4^2, c5) below about 1e-4.
_MAX_C1, _MAX_C3, _MAX_C4 = 1e-3, 0.05, 3e-3


def padded_size(n: int) -> int:
    """``n`` rounded up to one of eight sizes per factor of two (at most 12.5 %)."""
    step = 2 ** max(int(math.floor(math.log2(max(n, 1)))) - 3, 0)
    return int(math.ceil(n / step) * step)


def pad(values: np.ndarray, size: int, fill: float) -> np.ndarray:
    """``values`` followed by ``fill`` up to ``size`` entries."""
    out = np.full(size, fill, dtype=float)
    out[: values.shape[0]] = values
    return out


def padded_stars(plx, err, size: int, dtype):
    """Parallaxes, errors and weights (0 on padding) as arrays of ``size``.

    The padding is a harmless star (1 mas, error 0.1 mas) that weighs nothing.
    """
    return (
        pad(np.asarray(plx), size, 1.0).astype(dtype),
        pad(np.asarray(err), size, 0.1).astype(dtype),
        pad(np.ones(plx.shape[0]), size, 0.0).astype(dtype),
    )


def laplace(starts, plx, err, weight, priors, cut=None):
    """Posterior modes from several starting points, by damped Newton steps.

    Parameters
    ----------
    starts : array
        Starting points in the unconstrained space, shape ``(k, 4)``; the
        searches run one after another in one program (a vectorised search
        would step every start until the slowest had converged, and compile
        to a larger program).
    plx, err, weight : array
        As for `log_density`.
    priors : dict
        The population priors.
    cut : `~gaiadist.selection.ParallaxCut`, optional
        The parallax cut that made the sample.

    Returns
    -------
    modes : array
        Shape ``(k, 4)``.
    log_p : array
        `log_density` at each mode, shape ``(k,)``.
    hessians : array
        Hessian of ``-log_density`` at each mode, shape ``(k, 4, 4)``.
    """

    def loss(x):
        value = -log_density_terms(x, plx, err, weight, priors, cut=cut)[0]
        return jnp.where(jnp.isnan(value), jnp.inf, value)

    def derivatives(x):
        _, grad, hessian = log_density_terms(
            x, plx, err, weight, priors, order=2, cut=cut
        )
        return -hessian, -grad

    def search(x0):
        x, value, hessian = _newton(loss, derivatives, x0)
        return x, -value, hessian

    return jax.lax.map(search, starts)


@functools.cache
def mode_search_options() -> dict:
    """XLA options under which to compile `laplace`'s program.

    On a CPU, XLA's fusion emitters generate fast loops slowly. Without
    them the mode search, a few dozen evaluations of the posterior,
    compiles in about half the time (0.8 s instead of 1.5 s for M67) and
    runs a little slower (0.14 s instead of 0.12 s); the sampler and the
    per-star program, which run far longer, would lose more than they gain.
    Empty elsewhere, or where this XLA does not know the option.
    """
    options = {"xla_cpu_use_fusion_emitters": False}
    if jax.default_backend() != "cpu":
        return {}
    try:
        jax.jit(lambda x: x + 1.0, compiler_options=options).lower(1.0).compile()
    except jax.errors.JaxRuntimeError:
        return {}
    return options


def _newton(loss, derivatives, x0, max_iterations=_NEWTON_ITERATIONS):
    """Minimise ``loss`` from ``x0``: saddle-free Newton with a step search.

    ``derivatives(x)`` gives the Hessian and the gradient of ``loss``.
    ``max_iterations`` (which may be traced) caps the Newton steps.

    Each step solves with the Hessian's eigenvalues replaced by their absolute
    values (floored at ``1 / _MAX_SD**2``, so flat directions move by at most
    about ``_MAX_SD`` widths), caps the step at ``_MAX_STEP`` in every
    coordinate, and keeps the best of ``_N_STEP_SIZES`` halvings of it.
    Only function values decide which point is kept, so an imprecise gradient
    slows the search but cannot make it accept a worse point. Stops when a
    step no longer lowers the loss or after ``_NEWTON_ITERATIONS`` steps.
    Returns the point, the loss and the Hessian of the loss at the start of
    the last step (the same point, or one a negligible step away, unless the
    search ran out of steps).
    """
    scales = 0.5 ** jnp.arange(_N_STEP_SIZES, dtype=x0.dtype)

    def step(state):
        x, value, _, _, i = state
        h, g = derivatives(x)
        eig, vectors = jnp.linalg.eigh(0.5 * (h + h.T))
        eig = jnp.maximum(jnp.abs(eig), 1.0 / _MAX_SD**2)
        d = -vectors @ ((vectors.T @ g) / eig)
        d = d * jnp.minimum(1.0, _MAX_STEP / jnp.max(jnp.abs(d)))
        trial = x + scales[:, None] * d
        values = jax.vmap(loss)(trial)
        best = jnp.argmin(values)
        better = values[best] < value
        return (
            jnp.where(better, trial[best], x),
            jnp.where(better, values[best], value),
            h,
            jnp.where(better, value - values[best], 0.0),
            i + 1,
        )

    def going(state):
        *_, gain, i = state
        return (gain > _NEWTON_TOLERANCE) & (i < max_iterations)

    value0 = loss(x0)
    inf = jnp.asarray(jnp.inf, value0.dtype)
    x, value, h, _, _ = jax.lax.while_loop(
        going, step, (x0, value0, jnp.zeros((x0.size, x0.size), x0.dtype), inf, 0)
    )
    return x, value, h


def best_mode(modes: np.ndarray, log_p: np.ndarray, hessians: np.ndarray):
    """The mode with the most posterior mass, by the Laplace approximation.

    Each mode's mass is ``log_p - 0.5 ln det H``; modes whose Hessian is not
    positive definite (a search that stopped short) count only when no mode
    has one, and then the highest ``log_p`` wins. Returns ``(mode, hessian)``.
    """
    mass = laplace_masses(log_p, hessians)
    if np.all(np.isinf(mass)):
        mass = np.where(np.isfinite(log_p), log_p, -np.inf)
    best = int(np.argmax(mass))
    return modes[best], hessians[best]


def laplace_masses(log_p: np.ndarray, hessians: np.ndarray) -> np.ndarray:
    """Each mode's log posterior mass, ``log_p - 0.5 ln det H`` (Laplace).

    -inf where the value or the Hessian is not finite, or the Hessian is
    not positive definite (a search that stopped short of a mode).
    """
    mass = np.full(len(log_p), -np.inf)
    for i, (value, hessian) in enumerate(zip(log_p, hessians, strict=True)):
        if np.isfinite(value) and np.all(np.isfinite(hessian)):
            eig = np.linalg.eigvalsh(0.5 * (hessian + hessian.T))
            if np.all(eig > 0):
                mass[i] = value - 0.5 * np.sum(np.log(eig))
    return mass


def whitening(
    mode: np.ndarray, hessian: np.ndarray, x0: np.ndarray, max_sd: float = _MAX_SD
):
    """Centre and matrix ``C`` of the map ``x = centre + C z``.

    ``C C^T`` is the inverse Hessian, with its widths capped at ``max_sd``
    (flat directions, as for the cluster's parameters when there is no
    cluster). If the optimiser failed, the map starts at ``x0`` with unit
    widths and the sampler's own adaptation has to do the work.
    """
    mode = np.asarray(mode, dtype=float)
    hessian = np.asarray(hessian, dtype=float)
    if not (np.all(np.isfinite(mode)) and np.all(np.isfinite(hessian))):
        return np.asarray(x0, dtype=float), np.eye(len(x0))
    values, vectors = np.linalg.eigh(0.5 * (hessian + hessian.T))
    values = np.maximum(values, 1.0 / max_sd**2)
    return mode, vectors * (1.0 / np.sqrt(values))


def nuts_program(
    log_density_fn,
    constrain_fn,
    num_warmup,
    num_samples,
    progress=None,
    target_accept=TARGET_ACCEPT,
):
    """A compiled function that runs NUTS chains in the whitened coordinates.

    The whole run, initialisation, warmup (step size and diagonal mass
    matrix adaptation) and sampling of the chains given, vectorised, is one
    XLA program built from NumPyro's functional HMC interface, so nothing
    runs operation by operation and a later call with arrays of the same
    shapes reuses the compilation. `run_chains` decides how many chains go
    into one call. In the whitened coordinates the posterior's covariance is
    close to the identity, and a dense mass matrix, estimated from the
    warmup's few hundred draws, gave no more effective draws per draw but
    took more leapfrog steps per draw.

    Parameters
    ----------
    log_density_fn : callable
        ``log_density_fn(x, data)``: the log posterior of the unconstrained
        parameters ``x`` given the data (any pytree of arrays).
    constrain_fn : callable
        Maps ``x`` (shape (..., p)) to the parameter values returned.
    num_warmup, num_samples : int
        NUTS settings, per chain.
    progress : `ProgressBar`, optional
        Ticked once per iteration of every call.
    target_accept : float, optional
        NUTS's target acceptance probability.

    Returns
    -------
    callable
        ``run(keys, z0, data, centre, chol)`` with one random key (``keys``,
        shape ``(c, 2)``) and one starting point (``z0``, shape ``(c, p)``)
        per chain, in the whitened coordinates, returning the draws as
        ``constrain_fn`` gives them (``(c, num_samples, ...)``) and whether
        each draw's transition diverged (``(c, num_samples)``).
    """

    def potential_fn_gen(data, centre, chol):
        return lambda z: -log_density_fn(centre + chol @ z, data)

    init_kernel, sample_kernel = hmc(potential_fn_gen=potential_fn_gen, algo="NUTS")

    def run(keys, z0, data, centre, chol):
        args = (data, centre, chol)

        def init(key, z):
            return init_kernel(
                z,
                num_warmup,
                dense_mass=False,
                target_accept_prob=target_accept,
                model_args=args,
                rng_key=key,
            )

        def sample(state):
            return sample_kernel(state, model_args=args)

        # One chain runs as it is: XLA on a CPU compiles a batch of one into
        # slower loops than no batch at all.
        one = keys.shape[0] == 1
        if one:
            states = init(keys[0], z0[0])
        else:
            states = jax.vmap(init)(keys, z0)
            sample = jax.vmap(sample)

        def step(state, _):
            state = sample(state)
            if progress is not None:
                jax.debug.callback(progress.tick)
            return state, (state.z, state.diverging)

        _, (z, diverging) = jax.lax.scan(
            step, states, None, length=num_warmup + num_samples
        )
        # The draws as parameter values, here rather than by eager operations
        # on the host (each a small compilation in a new process).
        theta = constrain_fn(centre + z[num_warmup:] @ chol.T)
        diverging = diverging[num_warmup:]
        if one:
            return theta[None], diverging[None]
        return jnp.swapaxes(theta, 0, 1), jnp.swapaxes(diverging, 0, 1)

    return jax.jit(run)


def mode_search(log_density_fn, starts, data, max_iterations=_NEWTON_ITERATIONS):
    """Posterior modes from several starting points, by `_newton`.

    As `laplace`, for any twice differentiable ``log_density_fn(x, data)``,
    its derivatives by automatic differentiation; at most ``max_iterations``
    Newton steps from each start.

    Returns the modes (``(k, p)``), the log density there (``(k,)``) and
    the Hessians of its negative (``(k, p, p)``).
    """

    def loss(x):
        value = -log_density_fn(x, data)
        return jnp.where(jnp.isnan(value), jnp.inf, value)

    gradient = jax.grad(loss)
    hessian = jax.hessian(loss)

    def derivatives(x):
        return hessian(x), gradient(x)

    def search(x0):
        x, value, h = _newton(loss, derivatives, x0, max_iterations)
        return x, -value, h

    return jax.lax.map(search, starts)


def run_chains(run, keys, z0, *args, progress=None):
    """Run the chains of a `nuts_program`, concurrently on a CPU.

    On a CPU each chain is a call of its own, from its own thread: the calls
    run side by side, and no chain waits for the longest trajectory of the
    others, as vectorised chains do at every draw (a third more gradient
    evaluations for two chains on M67). Elsewhere the chains run vectorised
    in one call. The random keys are the same either way.

    Returns the draws and divergences as NumPy arrays.
    """
    chains = keys.shape[0]
    split = jax.default_backend() == "cpu" and chains > 1
    if progress is not None:
        progress.open(progress.per_call * (chains if split else 1))
    try:
        if not split:
            z, diverging = run(keys, z0, *args)
            return np.asarray(z), np.asarray(diverging)

        def one(i):
            return jax.device_get(run(keys[i : i + 1], z0[i : i + 1], *args))

        with ThreadPoolExecutor(chains) as pool:
            parts = list(pool.map(one, range(chains)))
        return tuple(np.concatenate(p, axis=0) for p in zip(*parts, strict=True))
    finally:
        if progress is not None:
            progress.close()


class ProgressBar:
    """A tqdm bar ticked from inside compiled samplers, from any thread.

    Parameters
    ----------
    per_call : int
        Ticks of one call of the program (its iterations).
    desc : str
        The bar's label.
    """

    def __init__(self, per_call: int, desc: str = "NUTS (marginal)"):
        self.per_call = per_call
        self.desc = desc
        self._bar = None
        self._lock = threading.Lock()

    def open(self, total: int) -> None:
        """Show a new bar of ``total`` ticks."""
        self._bar = tqdm(total=total, desc=self.desc, leave=False)

    def tick(self) -> None:
        """Advance the bar by one (a callback from the compiled program)."""
        with self._lock:
            if self._bar is not None:
                self._bar.update(1)

    def close(self) -> None:
        """Remove the bar."""
        with self._lock:
            if self._bar is not None:
                self._bar.close()
            self._bar = None


def to_parameters(theta: np.ndarray) -> dict:
    """The draws of a `nuts_program`, shape (..., 4), by parameter name."""
    theta = np.asarray(theta, dtype=float)
    return {k: theta[..., i] for i, k in enumerate(POPULATION)}


def star_results(plx, err, theta, shift=None):
    """Membership and distance percentiles of every star, from posterior draws.

    The stars go through one compiled program in chunks of a fixed size
    (`star_chunk`), so that it compiles once for clusters of every size.

    Parameters
    ----------
    plx, err : array
        Parallaxes and errors (mas), shape ``(n,)``.
    theta : array
        Posterior draws of the `POPULATION` parameters, in that order, shape
        ``(k, 4)``; its dtype is the one computed in.
    shift : array, optional
        Shape ``(k, n)``: at each draw, a log likelihood ratio of the
        cluster over the field from other observables (proper motions,
        positions), added to each star's cluster component.

    Returns
    -------
    p_member : `numpy.ndarray`
        For each draw ``Q I_c / (Q I_c + (1-Q) I_f)``, averaged over draws.
    quantiles : `numpy.ndarray`
        Shape ``(n, 3)``: the `SIGMA_PROBS` percentiles (pc) of the star's
        distance posterior, the mixture of the two components' posteriors
        averaged over the draws.
    check : float
        Standard deviation over the draws of the difference between the
        total log likelihood from the sampler's fast quadrature and from the
        robust one (nats). A constant difference leaves the posterior as it
        is; this spread is what would distort it.
    """
    n, size = plx.shape[0], star_chunk()
    theta = np.asarray(theta)
    dtype = theta.dtype
    # Draws go through the program in blocks of _DRAW_BLOCK (the last one
    # filled up with zero-weight copies): fewer, larger steps.
    k = theta.shape[0]
    blocks = -(-k // _DRAW_BLOCK)
    fill = np.repeat(theta[-1:], blocks * _DRAW_BLOCK - k, axis=0)
    draws = np.concatenate([theta, fill]).reshape(blocks, _DRAW_BLOCK, -1)
    use = (np.arange(blocks * _DRAW_BLOCK) < k).astype(dtype)
    use = use.reshape(blocks, _DRAW_BLOCK)
    if shift is None:
        shift = np.zeros((k, n), dtype)
    shift = np.concatenate([shift, np.zeros((blocks * _DRAW_BLOCK - k, n))])
    shift = shift.astype(dtype).reshape(blocks, _DRAW_BLOCK, n)
    # The cluster's nodes: for a Gaussian as wide as all the draws' clusters
    # together. Where every draw's cluster is at least half that wide and
    # centred within it, and that is wide against float32's spacing of ln r,
    # the grid resolves them all. Otherwise each draw's ln D is a node too,
    # and narrow clusters are expanded about their peaks.
    log_d, sigma = theta[:, 1].astype(float), np.exp(theta[:, 2].astype(float))
    offset = np.abs(log_d - log_d.mean())
    width = np.asarray(math.sqrt(np.mean(offset**2 + sigma**2)), dtype)
    resolved = (
        np.min(sigma) >= 0.5 * width
        and np.max(offset) <= width
        and width >= _GRID_MIN_WIDTH
    )
    extra = theta[:0, 1] if resolved else theta[:, 1]
    chunks = []
    for first in range(0, n, size):
        part = slice(first, first + size)
        stars = padded_stars(plx[part], err[part], size, dtype)
        extra_odds = np.zeros((blocks, _DRAW_BLOCK, size), dtype)
        extra_odds[..., : shift[..., part].shape[-1]] = shift[..., part]
        chunks.append(_star_chunk_results(*stars, draws, use, extra_odds, width, extra))
    p_member, grid, cdf, density = (
        np.concatenate([np.asarray(c[i], dtype=float) for c in chunks])[:n]
        for i in range(4)
    )
    gaps = sum(np.asarray(c[4], dtype=float) for c in chunks).reshape(-1)[:k]
    quantiles = np.exp(_quantiles(grid, cdf, density, SIGMA_PROBS))
    return p_member, quantiles, float(np.std(gaps))


def star_chunk() -> int:
    """Stars per call of the per-star program: small on a CPU, large elsewhere."""
    return 1024 if jax.default_backend() == "cpu" else 16384


@jax.jit
def _star_chunk_results(plx, err, weight, draws, use, shift, width, extra):
    """Membership, and distance CDF on a per-star grid, averaged over draws.

    ``draws`` has shape ``(blocks, b, 4)`` and ``use`` ``(blocks, b)``: 1 for
    a draw, 0 for a filler; ``shift`` ``(blocks, b, n)`` is added to each
    draw's cluster log likelihood of each star; ``width`` is that of the
    cluster's nodes, in ``ln r``, and ``extra`` more nodes for every star
    (the draws' ``ln D``, or none). Also returns the difference between the
    fast and the robust total log likelihood (``weight``-ed sum over the
    stars) at each draw, shape ``(blocks, b)``.

    Where the grid resolves every draw's cluster (no ``extra``), each draw's
    cluster integral is summed on the cluster's nodes of the grid, with the
    robust rule's weights. Otherwise it is the robust rule's, its nodes
    placed for that draw: when a cluster's size is not resolved its draws
    of ``sigma`` span orders of magnitude. The field's length scale is
    pinned down by the field stars to a small part of the EDSD prior's
    width, so each draw's field integral uses the robust rule's field nodes
    placed once, at the posterior mean of ``ln L`` (which saves half the
    per-draw work). Where the field is too sparse for that, the draws' field
    integrals are off and the fast rule, placed afresh at every draw,
    disagrees: the check shows it.

    Each star's distance CDF is summed on one grid: the field's nodes at the
    posterior mean and the cluster's for a Gaussian of mean ``ln D`` and
    ``width``, and ``extra``. The field, and each draw's cluster where it is
    wide, add their densities, integrated along the grid. With ``extra``, a
    draw's cluster that is narrow (`_narrow_cluster_cdf`) adds its CDF at
    the nodes instead, right however narrow it is. Between the nodes the CDF
    is interpolated; when the cluster's size is unresolved, each draw a
    spike at its own ``ln D``, the draws' ``ln D`` among the nodes put the
    percentiles within half a draw's weight (in probability) of the exact
    mixture's.
    """
    expand = extra.shape[0] > 0
    k = jnp.sum(use)
    log_l, log_d, _, _ = jnp.tensordot(use, draws, 2) / k
    u_c, lw_c = quadrature_nodes(plx, err, GaussianLogPrior(log_d, width))
    u_f, lw_f = quadrature_nodes(plx, err, EDSDLogPrior(log_l))
    u_x = jnp.broadcast_to(extra, (plx.shape[0], extra.shape[0]))
    # One sorted grid of all the nodes, with each rule's weights on its own
    # nodes and none on the others.
    grid = jnp.concatenate([u_c, u_f, u_x], axis=1)
    order = jnp.argsort(grid, axis=1)
    grid = jnp.take_along_axis(grid, order, axis=1)
    none_c, none_f, none_x = (jnp.full_like(u, -jnp.inf) for u in (u_c, u_f, u_x))
    lw_c, lw_f = (
        jnp.take_along_axis(jnp.concatenate(parts, axis=1), order, axis=1)
        for parts in ((lw_c, none_f, none_x), (none_c, lw_f, none_x))
    )
    # The likelihood and its slope in u on the grid are the same for every
    # draw.
    log_like = _log_likelihood(plx[:, None], err[:, None], grid)
    like_slope = _log_likelihood_derivatives(plx[:, None], err[:, None], grid)[0]

    def one(th, odds):
        log_l, log_d, log_sigma, q = th
        cluster = GaussianLogPrior(log_d, jnp.exp(log_sigma))
        field = EDSDLogPrior(log_l)
        log_q, log_1mq = jnp.log(q) + odds, jnp.log1p(-q)
        log_q_grid = log_q[:, None]
        log_c = log_q_grid + log_like + cluster.logpdf(grid)
        if expand:
            a = log_q + log_marginal_likelihood(plx, err, cluster)
        else:
            a = logsumexp(log_c + lw_c, axis=1)
        log_f = log_1mq + log_like + field.logpdf(grid)
        log_norm = jnp.logaddexp(a, logsumexp(log_f + lw_f, axis=1))
        fast = jnp.logaddexp(
            log_q + log_marginal_likelihood_fast(plx, err, cluster),
            log_1mq + log_marginal_likelihood_fast(plx, err, field),
        )
        member = jnp.exp(a - log_norm)
        # The star's distance posterior in u, per component, and the slope
        # of the part integrated along the grid.
        dens_c = jnp.exp(log_c - log_norm[:, None])
        dens_f = jnp.exp(log_f - log_norm[:, None])
        wide = dens_c
        if expand:
            narrow, cdf_c = _narrow_cluster_cdf(plx, err, cluster, grid)
            wide = jnp.where(narrow[:, None], 0.0, dens_c)
        slope = (
            (wide + dens_f) * like_slope
            + _times(wide, cluster.slope_at(grid - cluster.mode))
            + _times(dens_f, field.slope_at(grid - field.mode))
        )
        gap = jnp.sum(weight * (fast - log_norm))
        parts = (member, wide + dens_f, slope)
        if expand:
            parts += (
                dens_c - wide,
                jnp.where(narrow[:, None], member[:, None] * cdf_c, 0.0),
            )
        return *parts, gap

    def block(carry, xs):
        th, use_th, odds = xs
        *parts, gap = jax.vmap(one)(th, odds)
        return tuple(
            total + jnp.tensordot(use_th, part, 1)
            for total, part in zip(carry, parts, strict=True)
        ), gap

    n = plx.shape[0]
    init = (jnp.zeros(n, plx.dtype),) + (2 + 2 * expand) * (
        jnp.zeros(grid.shape, plx.dtype),
    )
    (p_sum, along, slope_sum, *narrow_sums), gaps = jax.lax.scan(
        block, init, (draws, use, shift)
    )
    # The CDF at the nodes: the trapezoid rule with its end correction (exact
    # for the cubic through each interval's densities and slopes) for the
    # part integrated along the grid, plus the narrow clusters' CDFs.
    h = jnp.diff(grid, axis=1)
    step = 0.5 * h * (along[:, 1:] + along[:, :-1]) + h * h / 12.0 * (
        slope_sum[:, :-1] - slope_sum[:, 1:]
    )
    cdf = jnp.concatenate(
        [jnp.zeros_like(grid[:, :1]), jnp.cumsum(jnp.maximum(step, 0.0), axis=1)],
        axis=1,
    )
    density = along
    if expand:
        density = along + narrow_sums[0]
        cdf = cdf + narrow_sums[1]
    total = cdf[:, -1:]
    return p_sum / k, grid, cdf / total, density / total, gaps


def _narrow_cluster_cdf(plx, err, cluster, grid):
    """Each star's cluster-component CDF at ``grid``, where the component is narrow.

    The component's log density, the likelihood plus the cluster's Gaussian
    in ``u``, is expanded about its peak ``m`` (Newton steps from ``ln D``):
    with ``y = (u - m) / s``, ``s`` the width from its curvature, it is
    ``-y^2/2 + c1 y + c3 y^3 + c4 y^4`` up to higher orders, and ``exp`` of
    the small terms to ``c3^2`` gives a CDF in closed form from truncated
    moments of the normal distribution. For a likelihood of width ``w`` in
    ``ln r``, ``c_k`` is of order ``(s/w)^2 s^(k-2)`` (and ``s <= w``), so
    with ``s < _NARROW`` and the terms checked against `_MAX_C1` and its
    kin, those neglected move the percentiles by less than about ``1e-5``
    in ``ln r``. Everything is an offset from ``ln D``, so a cluster
    narrower than the float32 spacing of ``ln r`` keeps its shape.

    Returns whether the component is narrow (shape ``(n,)``) and its CDF
    there (shape of ``grid``).
    """
    log_d, s2 = cluster.mean, cluster.sigma * cluster.sigma
    # Newton steps for the peak's offset d from ln D, carrying r = d / s2
    # rather than dividing by s2, from the peak of the cluster's Gaussian
    # times the likelihood's Gaussian approximation.
    pos = plx > 0
    c_like = jnp.where(pos, plx * plx / (err * err), 0.0)
    v_like = jnp.where(pos, jnp.log(1000.0 / jnp.where(pos, plx, 1.0)) - log_d, 0.0)
    r = v_like * c_like / (1.0 + s2 * c_like)
    d = s2 * r
    for _ in range(_N_NEWTON_PEAK):
        l1, l2 = _log_likelihood_derivatives(plx, err, log_d + d)
        r = (l1 - d * l2) / (1.0 - s2 * l2)
        d = s2 * r
    l1, l2, l3, l4 = _log_likelihood_derivatives(plx, err, log_d + d, 4)
    stretch = 1.0 - s2 * l2  # -(curvature) * s2
    s = cluster.sigma * jax.lax.rsqrt(jnp.where(stretch > 0, stretch, 1.0))
    c1 = (l1 - r) * s
    c3 = l3 * s**3 / 6.0
    c4 = l4 * s**4 / 24.0
    narrow = (
        (stretch > 0)
        & (s < _NARROW)
        & (jnp.abs(c1) < _MAX_C1)
        & (jnp.abs(c3) < _MAX_C3)
        & (jnp.abs(c4) < _MAX_C4)
    )
    y = ((grid - log_d) - d[:, None]) / s[:, None]
    c1, c3, c4 = c1[:, None], c3[:, None], c4[:, None]
    y2 = y * y
    # ∫_{-inf}^{y} t^k φ(t) dt is Φ(y) times a constant minus φ(y) times a
    # polynomial; these are the polynomials for k = 1, 3, 4 and 6.
    poly = (
        c1
        + c3 * (y2 + 2.0)
        + c4 * y * (y2 + 3.0)
        + 0.5 * c3 * c3 * y * (y2 * (y2 + 5.0) + 15.0)
    )
    norm = 1.0 + 3.0 * c4 + 7.5 * c3 * c3
    phi = jnp.exp(-0.5 * y2) * (1.0 / math.sqrt(2.0 * math.pi))
    cdf = 0.5 + 0.5 * jax.lax.erf(y * (1.0 / math.sqrt(2.0))) - phi * poly / norm
    return narrow, jnp.clip(cdf, 0.0, 1.0)


def _times(density, slope):
    """``density * slope``, 0 where the density is (a narrow prior's slope is huge)."""
    return jnp.where(density > 0, density * slope, 0.0)


def _quantiles(grid, cdf, density, probs):
    """Invert each row's CDF by cubic Hermite interpolation between its nodes.

    ``grid``, ``cdf`` and ``density`` (the CDF's derivative) have shape
    ``(n, m)``; returns the values of the grid at ``probs``, shape
    ``(n, len(probs))``. Bisection on each interval's cubic keeps the result
    inside its interval.
    """
    rows = np.arange(grid.shape[0])
    out = np.empty((grid.shape[0], len(probs)))
    for i, prob in enumerate(probs):
        j = np.clip(np.sum(cdf < prob, axis=1) - 1, 0, grid.shape[1] - 2)
        u0, u1 = grid[rows, j], grid[rows, j + 1]
        f0, f1 = cdf[rows, j], cdf[rows, j + 1]
        d0, d1 = (u1 - u0) * density[rows, j], (u1 - u0) * density[rows, j + 1]
        c2 = 3.0 * (f1 - f0) - 2.0 * d0 - d1
        c3 = 2.0 * (f0 - f1) + d0 + d1
        lo, hi = np.zeros_like(u0), np.ones_like(u0)
        for _ in range(40):
            t = 0.5 * (lo + hi)
            below = f0 + t * (d0 + t * (c2 + t * c3)) < prob
            lo, hi = np.where(below, t, lo), np.where(below, hi, t)
        out[:, i] = u0 + 0.5 * (lo + hi) * (u1 - u0)
    return out
