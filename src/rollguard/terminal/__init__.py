"""What rollguard shows on a terminal: progress of long work, and the demo's story (``rich``; plain
lines, or nothing, when the output is not a terminal)."""
