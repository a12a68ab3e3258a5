"""Gaia DR3 cone searches by TAP, with a disk cache: `query_cone`.

The query is plain ADQL (a ``CONTAINS(POINT, CIRCLE)`` cone) that any TAP
service runs: the Gaia archive at ESA by default, a mirror or a local server
through ``tap_url``. The centre is propagated to the Gaia DR3 epoch
(J2016.0) with astropy before the ADQL is written, and only validated
numbers and plain identifiers go into it.

TAP is spoken through `pyvo`, the Virtual Observatory client that
astroquery's own TAP modules are built on; it runs the query as an
asynchronous job (the Gaia archive caps synchronous results at 2000 rows)
over a `requests` session that carries the timeout.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
import time
import warnings
from collections.abc import Sequence
from pathlib import Path

import astropy.units as u
import numpy as np
import requests
from astropy import config as _config
from astropy.coordinates import Angle, SkyCoord
from astropy.table import QTable
from astropy.time import Time

from .exceptions import GaiadistWarning, InputError, ServiceError

__all__ = ["DEFAULT_COLUMNS", "GAIA_EPOCH", "conf", "query_cone"]

#: The columns the rest of gaiadist uses: identifiers and positions, the
#: astrometry, its errors and the correlations of parallax and proper motion
#: errors (for the astrometric cluster model), and what the parallax zero
#: point needs.
DEFAULT_COLUMNS = (
    "source_id",
    "ra",
    "dec",
    "parallax",
    "parallax_error",
    "pmra",
    "pmra_error",
    "pmdec",
    "pmdec_error",
    "parallax_pmra_corr",
    "parallax_pmdec_corr",
    "pmra_pmdec_corr",
    "phot_g_mean_mag",
    "bp_rp",
    "nu_eff_used_in_astrometry",
    "pseudocolour",
    "ecl_lat",
    "astrometric_params_solved",
    "ruwe",
)
#: Reference epoch of Gaia DR3 positions.
GAIA_EPOCH = Time(2016.0, format="jyear", scale="tcb")

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_CACHE_VERSION = 1
_FINAL_PHASES = ("COMPLETED", "ERROR", "ABORTED")
#: Rows asked of the service at most (the Gaia archive allows 3 million
#: anonymously); TOP in the ADQL applies row_limit.
_MAXREC = 3_000_000


class Conf(_config.ConfigNamespace):
    """Defaults of `query_cone` (also settable in gaiadist's config file)."""

    tap_url = _config.ConfigItem(
        "https://gea.esac.esa.int/tap-server/tap",
        "TAP service queried when no tap_url is given: the Gaia archive at ESA.",
    )
    table = _config.ConfigItem("gaiadr3.gaia_source", "Table the cone search runs on.")
    timeout = _config.ConfigItem(
        60.0, "Seconds to wait for the service before giving up.", cfgtype="float"
    )
    cache_dir = _config.ConfigItem(
        "",
        "Folder of cached query results; empty for astropy's cache folder "
        "for gaiadist (~/.cache/gaiadist/queries with current astropy).",
    )


conf = Conf()


def query_cone(
    target: str | SkyCoord | tuple[u.Quantity, u.Quantity],
    radius: u.Quantity,
    *,
    columns: Sequence[str] | None = None,
    table: str | None = None,
    tap_url: str | None = None,
    row_limit: int | None = None,
    cache: bool = True,
    timeout: float | None = None,
    get_query_payload: bool = False,
) -> QTable | str:
    """Gaia sources within ``radius`` of ``target``, as a table with units.

    Parameters
    ----------
    target : str, `~astropy.coordinates.SkyCoord` or (ra, dec)
        A name resolved by astropy (Sesame; needs the network), a sky
        position, or a pair of angle Quantities (ICRS). A SkyCoord with proper
        motion and ``obstime`` is moved to the Gaia epoch J2016.0 first.
    radius : `~astropy.units.Quantity`
        Cone radius, any angle unit.
    columns : sequence of str, optional
        Columns to return; by default `DEFAULT_COLUMNS`. Names starting with
        ``+`` are added to the defaults instead (``["+radial_velocity"]``).
    table : str, optional
        The table to search, ``schema.table``; by default ``conf.table``
        (``gaiadr3.gaia_source``).
    tap_url : str, optional
        TAP service; by default ``conf.tap_url`` (the Gaia archive at ESA).
    row_limit : int, optional
        Return at most this many rows; a result cut short by it, or by the
        service's own limit, comes with a warning.
    cache : bool, optional
        Keep the result on disk, keyed by the service and the query, and
        return it from there the next time without the network.
    timeout : float, optional
        Seconds to wait for the service; by default ``conf.timeout``.
    get_query_payload : bool, optional
        Return the ADQL query without sending it.

    Returns
    -------
    `~astropy.table.QTable` or str
        One row per source, columns with units (``source_id`` an exact
        64-bit integer); ``meta`` records the service (``tap_url``), the ADQL
        (``adql``) and the cone (``cone_ra``, ``cone_dec``, ``cone_rad``, in
        deg). The ADQL string when ``get_query_payload`` is true.

    Raises
    ------
    InputError
        For a radius that is not a positive angle, an unresolvable name, or
        a table or column name that is not a plain identifier.
    ServiceError
        When the service cannot be reached in time or refuses the query.
    """
    centre = _centre(target)
    radius = _radius(radius)
    names = _columns(columns)
    table = _table_name(conf.table if table is None else table)
    if row_limit is not None:
        if isinstance(row_limit, bool) or int(row_limit) != row_limit or row_limit < 1:
            raise InputError(f"row_limit must be a positive integer, not {row_limit!r}")
        row_limit = int(row_limit)
    adql = _adql(centre, radius, names, table, row_limit)
    if get_query_payload:
        return adql
    url = conf.tap_url if tap_url is None else str(tap_url)
    timeout = float(conf.timeout if timeout is None else timeout)

    path = _cache_path(url, adql) if cache else None
    if path is not None and path.exists():
        result = QTable.read(path, format="ascii.ecsv")
    else:
        result = _run(url, adql, timeout)
        result.meta.update(
            {
                # Short keys, so that FITS headers take them as they are.
                "tap_url": url,
                "adql": adql,
                "cone_ra": float(centre.ra.deg),
                "cone_dec": float(centre.dec.deg),
                "cone_rad": float(radius.deg),
            }
        )
        if path is not None:
            _write_atomically(result, path)
    if row_limit is not None and len(result) > row_limit:
        result = result[:row_limit]
        warnings.warn(
            f"the cone holds more than row_limit={row_limit} sources; the result "
            "is truncated to the first rows the service returned. Raise row_limit "
            "or shrink the radius for the complete cone.",
            GaiadistWarning,
            stacklevel=2,
        )
    elif result.meta.get("overflow"):
        warnings.warn(
            f"the service {url} stopped at its own row limit ({len(result)} "
            "rows): the result is truncated. Shrink the radius or query a "
            "service that allows more rows.",
            GaiadistWarning,
            stacklevel=2,
        )
    return result


def _centre(target) -> SkyCoord:
    """The cone centre in ICRS at the Gaia epoch."""
    if isinstance(target, str):
        try:
            coord = SkyCoord.from_name(target)
        except Exception as exc:  # NameResolveError, or no network at all
            raise InputError(
                f"could not resolve the name {target!r} to a position with "
                f"Sesame ({_first_line(exc)}; no network, or an unknown name); "
                "give a SkyCoord or (ra, dec) instead"
            ) from None
    elif isinstance(target, SkyCoord):
        coord = target
    elif isinstance(target, tuple | list) and len(target) == 2:
        try:
            coord = SkyCoord(Angle(target[0]), Angle(target[1]), frame="icrs")
        except (u.UnitsError, ValueError, TypeError) as exc:
            raise InputError(
                f"target as (ra, dec) must be two angle Quantities: {exc}"
            ) from None
    else:
        raise InputError(
            "target must be a name, a SkyCoord or (ra, dec) angle Quantities, "
            f"not {type(target).__name__}"
        )
    if not coord.isscalar:
        raise InputError("target must be a single position, not an array")
    if _has_motion(coord):
        with warnings.catch_warnings():
            # Without a distance ERFA takes the star to be very far away,
            # which is right for moving a cone centre.
            warnings.filterwarnings("ignore", message=".*distance overridden")
            coord = coord.apply_space_motion(new_obstime=GAIA_EPOCH)
    icrs = coord.icrs
    return SkyCoord(icrs.ra, icrs.dec, frame="icrs")


def _has_motion(coord: SkyCoord) -> bool:
    return coord.obstime is not None and "s" in coord.data.differentials


def _radius(radius) -> Angle:
    if not isinstance(radius, u.Quantity):
        raise InputError(
            f"radius must be an angle Quantity (e.g. 0.5 * u.deg), not {radius!r}"
        )
    try:
        angle = Angle(radius)
    except u.UnitsError:
        raise InputError(
            f"radius must be an angle, not a Quantity in {radius.unit}"
        ) from None
    if not angle.isscalar or not np.isfinite(angle.deg) or not 0 < angle.deg <= 180:
        raise InputError(f"radius must be one angle in (0, 180] deg, not {radius}")
    return angle


def _check_identifier(name: str, what: str) -> str:
    if not isinstance(name, str) or not _IDENTIFIER.match(name):
        raise InputError(
            f"{what} {name!r} is not a plain identifier (letters, digits and "
            "underscores); it is refused so that nothing but names reaches the ADQL"
        )
    return name


def _columns(columns) -> list[str]:
    if columns is None:
        return list(DEFAULT_COLUMNS)
    if isinstance(columns, str):
        columns = [columns]
    columns = list(columns)
    if not columns:
        raise InputError("columns is empty: name at least one column")
    added = [c.startswith("+") for c in columns if isinstance(c, str)]
    if any(added) and not all(added):
        raise InputError(
            "columns either replaces the defaults (plain names) or adds to them "
            "(every name starting with '+'), not both"
        )
    names = list(DEFAULT_COLUMNS) if any(added) else []
    for c in columns:
        name = _check_identifier(c[1:] if any(added) else c, "column")
        if name not in names:
            names.append(name)
    return names


def _table_name(table: str) -> str:
    parts = table.split(".") if isinstance(table, str) else [table]
    if not 1 <= len(parts) <= 3:
        raise InputError(f"table {table!r} is not of the form schema.table")
    for part in parts:
        _check_identifier(part, "table name part")
    return table


def _adql(centre: SkyCoord, radius: Angle, names, table, row_limit) -> str:
    top = "" if row_limit is None else f"TOP {row_limit + 1} "
    return (
        f"SELECT {top}{', '.join(names)} "
        f"FROM {table} "
        "WHERE 1 = CONTAINS(POINT('ICRS', ra, dec), "
        f"CIRCLE('ICRS', {centre.ra.deg:.10f}, {centre.dec.deg:.10f}, "
        f"{radius.deg:.10f}))"
    )


def _cache_path(url: str, adql: str) -> Path:
    folder = Path(conf.cache_dir) if conf.cache_dir else _default_cache_dir()
    key = json.dumps({"url": url, "adql": adql, "version": _CACHE_VERSION})
    return folder / f"{hashlib.sha256(key.encode()).hexdigest()[:32]}.ecsv"


def _default_cache_dir() -> Path:
    return Path(_config.get_cache_dir("gaiadist")) / "queries"


def _write_atomically(result: QTable, path: Path) -> None:
    """Write to a temporary file beside ``path``, then rename it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(dir=path.parent, suffix=".ecsv.part")
    os.close(handle)
    try:
        result.write(tmp, format="ascii.ecsv", overwrite=True)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _run(url: str, adql: str, timeout: float) -> QTable:
    """Run ``adql`` as an asynchronous TAP job and return the rows."""
    with _TimeoutSession(timeout) as session:
        result, problem = _fetch(session, url, adql, timeout)
    if problem is not None:
        raise ServiceError(f"TAP service {url}: {problem}") from None

    with warnings.catch_warnings():
        # Units a service writes loosely are kept as strings, not fatal.
        warnings.simplefilter("ignore", u.UnitsWarning)
        rows = result.to_table()
    out = QTable(rows)
    for name in out.colnames:
        # VOTable columns are all masked; keep masks only where they hide
        # something, so that source_id and complete columns are plain arrays.
        mask = getattr(out[name], "mask", None)
        if mask is not None and not np.any(mask):
            column = out[name]
            out[name] = (
                column.unmasked if hasattr(column, "unmasked") else column.filled()
            )
    out.meta = {"overflow": result.query_status == "OVERFLOW"}
    return out


def _fetch(session, url: str, adql: str, timeout: float):
    """``(pyvo result, None)``, or ``(None, what went wrong)``."""
    import pyvo

    deadline = time.monotonic() + timeout
    job = None
    try:
        service = pyvo.dal.TAPService(url, session=session)
        job = service.submit_job(adql, maxrec=_MAXREC)
        job.run()
        pause = 0.1
        while (phase := job.phase) not in _FINAL_PHASES:
            if time.monotonic() + pause > deadline:
                return None, f"the query was still {phase} after {timeout:g} s"
            time.sleep(pause)
            pause = min(2 * pause, 5.0)
        job.raise_if_error()
        return job.fetch_result(), None
    except requests.exceptions.RequestException as exc:
        return None, _reason(exc, timeout)
    except pyvo.dal.DALQueryError as exc:
        return None, f"the service refused the query: {_first_line(exc)}"
    except pyvo.dal.DALFormatError as exc:
        return None, f"the answer was not a readable VOTable: {_first_line(exc)}"
    except pyvo.dal.DALServiceError as exc:
        cause = getattr(exc, "cause", None)
        if isinstance(cause, requests.exceptions.RequestException):
            return None, _reason(cause, timeout)
        return None, _first_line(exc)
    finally:
        if job is not None:
            _delete_quietly(job)


def _reason(exc: Exception, timeout: float) -> str:
    """What a failed HTTP request means, in a few words."""
    if isinstance(exc, requests.exceptions.Timeout):
        return f"no answer within the timeout ({timeout:g} s)"
    if isinstance(exc, requests.exceptions.ConnectionError):
        text = str(exc)
        if "NameResolution" in text or "Name or service not known" in text:
            return "the host name could not be resolved (no network?)"
        return "the connection failed (no network, or the service is down)"
    if isinstance(exc, requests.exceptions.HTTPError) and exc.response is not None:
        return f"HTTP error {exc.response.status_code} {exc.response.reason}"
    return _first_line(exc)


def _first_line(exc: Exception) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def _delete_quietly(job) -> None:
    try:
        job.delete()
    except Exception:  # a failed clean-up must not hide the result or error
        pass


class _TimeoutSession(requests.Session):
    """A `requests.Session` whose requests carry a default ``timeout``.

    pyvo streams some responses without closing them; closing the session
    closes every response it gave out, so no socket is left open.
    """

    def __init__(self, timeout: float) -> None:
        super().__init__()
        self.timeout = timeout
        self._responses = []

    def request(self, *args, **kwargs):
        kwargs.setdefault("timeout", self.timeout)
        response = super().request(*args, **kwargs)
        self._responses.append(response)
        return response

    def close(self) -> None:
        for response in self._responses:
            response.close()
        self._responses.clear()
        super().close()
