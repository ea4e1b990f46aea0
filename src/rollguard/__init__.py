"""rollguard."""
