"""The Dask client that surveys and bulk runs hand their tasks to."""

from __future__ import annotations

import contextlib

from .exceptions import GaiadistError, InputError

__all__ = ["dask_client"]


@contextlib.contextmanager
def dask_client(workers: int, scheduler=None):
    """A `distributed.Client` for the duration of the block.

    ``scheduler`` is a running cluster's address or a client (used as it is
    and left open); by default a `distributed.LocalCluster` of ``workers``
    single-threaded processes is started, and closed afterwards.
    """
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise InputError(
            "running on Dask needs dask.distributed: pip install 'dask[distributed]'"
        ) from None
    if scheduler is not None and not isinstance(scheduler, str):
        yield scheduler
        return
    if scheduler is None:
        with (
            LocalCluster(
                n_workers=workers,
                threads_per_worker=1,
                processes=True,
                dashboard_address=None,
            ) as cluster,
            Client(cluster) as client,
        ):
            yield client
        return
    try:
        client = Client(scheduler, timeout="30s")
    except OSError as exc:
        raise GaiadistError(
            f"cannot reach the Dask scheduler at {scheduler}: {exc}"
        ) from None
    with client:
        yield client
