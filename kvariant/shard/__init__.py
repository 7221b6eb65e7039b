"""A run spread over CI runners: plan.py (the units of work and their
shard, a pure function of the config), store.py (the kernel store that
``build`` writes and a shard boots from), merge.py (shard run directories
into one run)."""
