"""Pre-flight readiness of a rollout (issue 16): is its revert path rehearsed, do its cohorts have
control baselines, did its eval gate pass? One module per check, and :mod:`.rollout` that holds them for
one rollout, says ``ready`` or ``not ready`` and words the signed readiness record."""
