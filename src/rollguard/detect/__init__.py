"""Detection: events in, verdict changes out. :class:`~rollguard.detect.engine.Engine` holds every rollout;
each rollout's monitor (:mod:`.monitor`) only orchestrates concerns that live in modules of their own:
the open batch (:mod:`.batching`) and its columns (:mod:`.batch_columns`), cohort membership
(:mod:`.membership`), the per-slot statistics (:mod:`.arrays`), phase and promotion (:mod:`.phase`),
the cumulative mean and tail comparisons (:mod:`.mean_tests`, :mod:`.tail_tests`, deciding with
:mod:`.comparisons`), the onset CUSUMs (:mod:`.onset_checks` over :mod:`.onset`), baseline drift and
post-rollout change (:mod:`.baseline_drift` over :mod:`.drift`), the sample ratio (:mod:`.sample_ratio`)
and the α budget (:mod:`.budget`); the offline eval gate (:mod:`.eval_gate`) uses the same comparisons
on two eval runs."""
