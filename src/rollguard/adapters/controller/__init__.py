"""Rollout controllers: act on rollguard's signed commands and acknowledge each one.

``flagd`` edits OpenFeature flagd flag definitions (pure), ``admission`` decides which commands a
controller may act on (pure), ``flag_file`` writes the flags file atomically, ``state`` remembers what
was acknowledged across restarts, ``handler`` turns one command into one ack, ``consumer`` runs it
over Kafka.
"""
