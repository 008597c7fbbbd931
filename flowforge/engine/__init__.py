"""The engine: runs jobs of a flow from its compiled plan. Private to FlowForge.

The engine is the only code that calls routines' handlers. It works from what
:class:`~flowforge.Flow` hands it, a :class:`~flowforge.engine.setup.FlowSetup`
(the compiled plan, the flow's settings and its registry of running jobs),
never from the flow itself, so nothing here imports :mod:`flowforge.flow`.

Modules, bottom up: ``clock`` (the real time seam), ``fingerprint`` (a flow's
shape), ``plan`` (the routing table), ``setup`` (what a flow hands over),
``entry`` (a new job's entry), ``stats`` (routine stats snapshots),
``journal`` (checkpoints and leases of durable jobs), ``sequential`` and
``concurrent`` (the two scheduler loops), ``runtime`` (one job run's rules),
``jobs`` (start, resume, pause, cancel, recover).
"""
