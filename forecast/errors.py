"""Errors raised by the forecast package."""

from __future__ import annotations


class ForecastError(Exception):
    """The forecaster could not do what was asked."""


class SupportingDataError(ForecastError):
    """A CDSi supporting-data release is missing, incomplete or malformed."""
