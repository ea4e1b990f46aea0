"""Pipelines: one rollout from event to outputs (detection, policy, its own clock, event dedup), driven
alike by ``rollguard replay`` and the streaming worker; and what rollouts share (silences)."""
