"""Errors and warnings raised by gaiadist."""

from astropy.utils.exceptions import AstropyUserWarning

__all__ = ["GaiadistError", "InputError", "GaiadistWarning", "ServiceError"]


class GaiadistError(Exception):
    """Base class for every error gaiadist raises on purpose."""


class InputError(GaiadistError, ValueError):
    """An input table, column or argument cannot be used as given."""


class GaiadistWarning(AstropyUserWarning):
    """Something the user should know about their data or settings."""


class ServiceError(GaiadistError):
    """A data service could not be reached or refused a request."""
