"""moegen's vocabulary: every constant and small type that more than one module names, defined
once here (a constant defined in two places drifts). No torch, no backend."""

from __future__ import annotations

# ---- command-line exit codes (README: "Exit codes") ------------------------------------------
EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2
