"""bulk360's benchmark: generated Customer 360 data, bulk360 against the limit and its peers."""
