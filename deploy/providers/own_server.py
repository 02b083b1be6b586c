"""``provider: ssh``: a server of the operator's own, reached over SSH at ``server.host``.

The TLJH operations as they are; no snapshot or resize from here (the operator's own
provider does those)."""

from __future__ import annotations

from deploy.providers.tljh_server import TLJHServer


class OwnServer(TLJHServer):
    """A server the course names by address; the service never creates or resizes it."""

    name = "ssh"
