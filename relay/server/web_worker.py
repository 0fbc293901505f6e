"""The gunicorn worker class: uvicorn's, accepting through
relay/server/accept_balance.py so that the workers share connections evenly."""

from __future__ import annotations

import sys

from gunicorn.arbiter import Arbiter
from uvicorn.server import Server
from uvicorn_worker import UvicornWorker

from relay.server import accept_balance

# Made in the master when gunicorn loads relay/server/gunicorn_conf.py, before any
# fork; every worker inherits it. None: workers accept as uvicorn does.
board: accept_balance.Board | None = None


class BalancedServer(Server):
    """uvicorn's server, with ``Acceptor``s where it would create asyncio
    servers on gunicorn's sockets."""

    def __init__(self, config, slot: int) -> None:
        super().__init__(config)
        self.server_state.connections = accept_balance.Connections(board, slot)
        accept_balance.here = self.server_state.connections

    async def startup(self, sockets=None) -> None:
        # Lifespan and the rest of uvicorn's start, on no socket...
        await super().startup(sockets=[])
        config, connections = self.config, self.server_state.connections

        def create_protocol():
            return config.http_protocol_class(
                config=config,
                server_state=self.server_state,
                app_state=self.lifespan.state,
            )

        # ...then the sockets, accepted our way. gunicorn's wrap the socket.
        self.servers = [
            accept_balance.Acceptor(
                getattr(listener, "sock", listener),
                create_protocol,
                connections,
                ssl=config.ssl,
            )
            for listener in sockets or []
        ]


class BalancedUvicornWorker(UvicornWorker):
    # Bounded reads and a connection cap at the edge (relay/server/edge.py).
    CONFIG_KWARGS = {**UvicornWorker.CONFIG_KWARGS, "http": "relay.server.edge:EdgeProtocol"}
    # Set by the master's pre_fork hook; None when the board had no room.
    board_slot: int | None = None

    async def _serve(self) -> None:
        if board is None or self.board_slot is None:
            await super()._serve()
            return
        self.config.app = self.wsgi
        server = BalancedServer(self.config, self.board_slot)
        self._install_sigquit_handler()
        await server.serve(sockets=self.sockets)
        if not server.started:
            sys.exit(Arbiter.WORKER_BOOT_ERROR)


def make_board(slots: int) -> None:
    global board
    board = accept_balance.Board(slots)


def reserve_slot(server, worker) -> None:
    """In the master, before the fork: a board slot for this worker."""
    if board is not None:
        taken = {w.board_slot for w in server.WORKERS.values()}
        worker.board_slot = board.reserve(taken)


def free_slot(worker) -> None:
    """In the master, once the worker has exited."""
    if board is not None and getattr(worker, "board_slot", None) is not None:
        board.free(worker.board_slot)
