"""Thin adapters between the pure core and the outside world: files (``replay``), Kafka (the Faust
``worker``, topic contracts and their admin, dead-letter records)."""
