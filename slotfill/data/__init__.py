"""Reading, checking and fetching slot-filling data."""
