"""Framework hosts: the switchboard's endpoints mounted in other servers.

FastAPI is the default host (``parley.server.app``); these serve the same routes
from a plain ``websockets`` server (:mod:`.websockets`), Django Channels
(:mod:`.django`) and python-socketio (:mod:`.socketio`). Each adapts its
framework's connection to a :class:`~parley.transports.socket.WireSocket` in a
few lines and hands it to the switchboard; the routes come from the platform
registry, so a new platform appears in every host at once. The Django and
Socket.IO modules are imported by name only: their frameworks are optional (the
``adapters`` extra).
"""

__all__: list[str] = []
