"""Sockets, below HTTP: every accepted connection counted, given deadlines, and refused when the
server is full or out of descriptors.

uvicorn reads requests and writes answers; it does not bound how long a client may take to send
its request headers, nor how long a socket may sit with unsent bytes because its client stopped
reading, and it counts nothing before a request has arrived. Here, each accepted socket is wrapped
(`guarded.GuardedConnection`) between the event loop's transport and uvicorn's protocol, counted in
one `table.ConnectionTable` from accept to close, and watched against its deadlines
(`deadlines.py`, sans I/O). `listener.py` accepts the sockets itself, so that running out of file
descriptors refuses new clients instead of spinning the event loop.
"""

from .deadlines import ConnectionLimits, Expired
from .guarded import guarded_http
from .listener import Listener, bind_listeners
from .table import ConnectionTable

__all__ = ["ConnectionLimits", "ConnectionTable", "Expired", "Listener", "bind_listeners", "guarded_http"]
