"""The domain: what rollguard reads and says — events (contract v1), metrics and their margins, cohorts,
and verdicts with their evidence. No statistics and no I/O here; everything else builds on these."""
