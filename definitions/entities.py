"""Entities of the example: airports, planes, carriers and routes."""

from featurestore import Entity, String

airport = Entity("airport", join_keys={"origin": String}, description="Departure airport (FAA code)")
plane = Entity("plane", join_keys={"tailnum": String}, description="Aircraft tail number")
carrier = Entity("carrier", join_keys={"carrier": String}, description="Two-letter airline code")
route = Entity("route", join_keys={"origin": String, "dest": String}, description="Origin-destination pair")
