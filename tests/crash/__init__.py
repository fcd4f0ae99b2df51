"""T-A1: kill -9 at every crashpoint and at random moments, restart, reconcile, check the invariants."""
