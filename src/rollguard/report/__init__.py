"""The report and the dashboard: one view of rollouts (cohorts → metrics: state, estimate and interval
over event time, sample ratio and phase, alerts, commands and their acks, operator actions, each
verdict explained in words), rendered to one self-contained HTML page.

``rollguard report OUT_DIR`` renders a replay's outputs (:func:`write_report`); the streaming worker
serves the same page live at ``/`` from what it holds (:class:`~rollguard.report.history.History`).
"""

from rollguard.report.records import RolloutRecords, read_replay_outputs
from rollguard.report.render import render_page, render_report, write_report

__all__ = ["RolloutRecords", "read_replay_outputs", "render_page", "render_report", "write_report"]
