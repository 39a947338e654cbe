"""Embedded CDSi evaluation and forecast engine.

Pure: imports only the standard library, and does no I/O after the supporting
data is loaded. Must not import any other Cairn package.
"""

from forecast.data import SupportingData, load_supporting_data
from forecast.dates import add_duration
from forecast.engine import Forecaster
from forecast.errors import ForecastError, SupportingDataError
from forecast.install import installed_release
from forecast.model import (
    AdministeredDose,
    AntigenForecast,
    DoseEvaluation,
    ForecastResult,
    PatientInput,
    VaccineGroupForecast,
)

__all__ = [
    "AdministeredDose",
    "AntigenForecast",
    "DoseEvaluation",
    "ForecastError",
    "ForecastResult",
    "Forecaster",
    "PatientInput",
    "SupportingData",
    "SupportingDataError",
    "VaccineGroupForecast",
    "add_duration",
    "installed_release",
    "load_supporting_data",
]
