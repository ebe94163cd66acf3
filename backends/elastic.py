"""Horovod elastic state for any :class:`backends.base.HorovodEngine` (imported only by elastic runs)."""

from __future__ import annotations

import copy

from horovod.common.elastic import State


class EngineState(State):
    """An engine's :meth:`~backends.base.HorovodEngine.get_state` plus the loop's ``position``, as
    Horovod's elastic ``State``: ``save`` (on ``commit``), ``restore`` (after a failure) and ``sync``
    (rank 0's last commit to every rank, new workers included).

    Args:
        engine: a built engine.
        position: a picklable dict of the loop's own state; exposed and updated as ``self.position``.
    """

    def __init__(self, engine, position: dict):
        self.engine, self.position = engine, position
        super().__init__(bcast_object=engine.broadcast_object, get_rank=engine.hvd.rank)
        self.save()

    def save(self) -> None:
        """Copy the position and the engine state to host memory (deep copies: training goes on in place)."""
        self._saved = copy.deepcopy((self.position, self.engine.get_state()))

    def restore(self) -> None:
        """Back to the last :meth:`save`."""
        self.position, state = copy.deepcopy(self._saved)
        self.engine.set_state(state)

    def sync(self) -> None:
        """Every rank takes rank 0's last save."""
        self._saved = self.engine.broadcast_object(self._saved)
        self.restore()
