"""moegen verify: plan the compile + audit checks, run them, report; the shared IR/ISA analyses."""
