"""Rollout commands: progression, safety rails, signatures, promotion (see :mod:`rollguard.policy.policy`)."""
