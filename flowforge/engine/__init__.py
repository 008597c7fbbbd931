"""The engine: runs jobs of a flow from its compiled plan. Private to FlowForge.

The engine is the only code that calls routines' handlers. It works from what
:class:`~flowforge.Flow` hands it, a :class:`~flowforge.engine.setup.FlowSetup`
(the compiled plan, the flow's settings and its registry of running jobs),
never from the flow itself, so nothing here imports :mod:`flowforge.flow`.

Modules, top down, in the order of the engine's import-linter contract in
``pyproject.toml``: a module imports only from the items below its own, and the
modules of one item do not import each other.

- ``jobs``: starting, resuming, pausing, cancelling and recovering jobs.
- ``run``: one run of a job: set it up, hand it to a loop, settle and save it.
- ``awaiting``: the asyncio scheduler, handlers awaited on the caller's loop.
- ``concurrent`` and ``sequential``: the two thread scheduler loops, deliveries
  on a pool with one coordinator, or one at a time with an inlined direct path.
- ``runtime``: one job run's rules, the only code that calls handlers.
- ``routing`` (emissions turned into deliveries, the statuses the loops read),
  ``stats`` (routine stats snapshots), ``journal`` (checkpoints and leases of
  durable jobs), ``entry`` (a new job's entry params and slot), ``setup`` (what
  a flow hands over: plan, settings, running jobs) and ``fit`` (whether a job's
  data fits the plan, checked before the job is touched).
- ``plan``: the flow's routing table, compiled once per change of the flow.
- ``fingerprint`` (a flow's shape and what changed between two) and ``clock``
  (the real clock behind the time seam).
"""
