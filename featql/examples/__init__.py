"""Example data for the bundled fraud-detection feature repository (`features/`)."""
