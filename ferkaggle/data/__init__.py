"""Reading, validating, splitting and storing competition data."""
