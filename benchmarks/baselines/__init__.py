"""Baseline judges for the detection benchmarks (numpy only): what rollguard's verdicts are compared with.

- :func:`kayenta_judge`: Kayenta-style per-minute aggregates + Mann-Whitney U at 98%, re-run every
  minute (the field's practice; its A/A false-alarm rate is part of the result);
- :func:`oracle_cusum`: a CUSUM that knows the pre- and post-change parameters of the injected metric
  in the injected cohort (a lower bound on detection delay), :func:`oracle_spec_for` derives them
  from a simulator scenario.

Both take the simulator's event dicts (any iterable of v1 event dicts) or :class:`EventColumns`
(build once with ``EventColumns.from_events`` / ``from_scenario`` to run several judges on a stream).
"""

from .columns import EventColumns, cohort_key
from .kayenta import DEFAULT_METRICS, KayentaMetric, KayentaResult, MannWhitney, kayenta_judge, mann_whitney_u
from .observations import OBSERVATIONS, observe
from .oracle_cusum import OracleResult, OracleSpec, cusum, oracle_cusum, oracle_spec_for

__all__ = [
    "DEFAULT_METRICS",
    "OBSERVATIONS",
    "EventColumns",
    "KayentaMetric",
    "KayentaResult",
    "MannWhitney",
    "OracleResult",
    "OracleSpec",
    "cohort_key",
    "cusum",
    "kayenta_judge",
    "mann_whitney_u",
    "observe",
    "oracle_cusum",
    "oracle_spec_for",
]
