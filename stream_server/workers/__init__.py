"""`--workers N`: N server processes on one port under a supervisor (docs/scaling.md).

restarts.py decides when a worker that exited starts again (sans I/O); supervisor.py binds the
port once, starts the workers, restarts them and forwards signals; handoff.py is the worker's side:
the listening sockets it inherits and its link to the supervisor.
"""

from .handoff import WORKER_ENV, Inherited
from .restarts import GiveUp, Restart, RestartPolicy

__all__ = ["WORKER_ENV", "GiveUp", "Inherited", "Restart", "RestartPolicy"]
