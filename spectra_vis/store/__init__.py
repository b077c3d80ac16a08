"""Store stage: the capture file. Schema (``schema/``), reading, validating and writing captures
atomically, and version 1.0 files read-only (``capture_file``). Imports ``record`` below it."""
