"""Alerts: rules over verdict signals, and the alert lifecycle (see :mod:`rollguard.policy.policy`)."""
