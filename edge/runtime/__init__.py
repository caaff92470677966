"""The shared node runtime: one process per board hosting one machine (docs/runtime.md).

``edge.runtime.machine`` is the interface a machine implements, ``edge.runtime.registry``
maps a config's ``machine:`` kind to its config model and factory (imported lazily), and
``edge.runtime.node`` is the runtime itself.
"""
