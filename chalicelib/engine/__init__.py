"""The engine: the run life cycle (lifecycle), the tick (tick), the worker (worker, batch)
and the recovery sweep (sweep)."""
