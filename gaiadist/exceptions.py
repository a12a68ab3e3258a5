"""Errors and warnings raised by gaiadist."""

from astropy.utils.exceptions import AstropyUserWarning

__all__ = ["GaiadistError", "InputError", "GaiadistWarning"]


class GaiadistError(Exception):
    """Base class for every error gaiadist raises on purpose."""


class InputError(GaiadistError, ValueError):
    """An input table, column or argument cannot be used as given."""


class GaiadistWarning(AstropyUserWarning):
    """Something the user should know about their data or settings."""
