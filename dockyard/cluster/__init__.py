"""The orchestrator: services of replicated tasks on a (for now single-node) swarm-like cluster.

Split as swarmkit splits it, each part a small module with a narrow interface, so that more
agents (hosts) can join later without reshaping the rest:

* :mod:`~dockyard.cluster.store` -- the cluster state (swarm, services, tasks) in the state root's
  SQLite metadata DB; the one thing every part shares.
* :mod:`~dockyard.cluster.spec` -- docker's ``ServiceSpec`` documents: building, validating,
  hashing the task template (what makes a task outdated).
* :mod:`~dockyard.cluster.scheduler` -- pure decisions: which slots need a task, which tasks go,
  which slots a rolling update may touch now.
* :mod:`~dockyard.cluster.agent` -- runs and observes tasks on one host by driving the local
  engine through the library (``client.containers``); the only part that touches containers.
* :mod:`~dockyard.cluster.ingress` -- the load balancer: kernel DNAT over the ready tasks.
* :mod:`~dockyard.cluster.reconciler` -- one pass: observe, decide, act.
* :mod:`~dockyard.cluster.manager` -- the long-running process that runs passes.
* :mod:`~dockyard.cluster.service` -- the library API (``Swarm``, ``Services``, ``Nodes``) the CLI
  calls; :mod:`~dockyard.cluster.stack` -- compose files as stacks of services.
"""
