"""Detection: events in, verdict changes out. :class:`~rollguard.detect.engine.Engine` holds every rollout;
each rollout's monitor orchestrates concerns that live in modules of their own (batching and cohort
membership, phase, mean and tail comparisons, onset change detection, baseline drift, sample ratio, the
α budget); the offline eval gate uses the same comparisons on two eval runs."""
