"""The policy: verdict changes in, alerts and commands out. The signal table (the latest state of every
check of a rollout) is shared by its two parts: ``alerts/`` (rules, lifecycle, records) and
``commands/`` (the planner's ladder, promotion, signatures)."""

from rollguard.policy.policy import Output, Policy

__all__ = ["Output", "Policy"]
