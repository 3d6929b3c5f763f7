"""Feature services: what the arrival-delay model consumes."""

from definitions.delays import carrier_delays, departures, route_delays
from definitions.planes import planes
from definitions.weather import weather
from featurestore import FeatureService

delay_model = FeatureService(
    "delay_model",
    features=[
        weather[["temp", "humid", "wind_speed", "wind_gust", "precip", "visib"]],
        planes[["manufactured_year", "seats", "engines"]],
        carrier_delays,
        route_delays,
        departures,
    ],
    description="Features for predicting arrivals more than 15 minutes late.",
)
