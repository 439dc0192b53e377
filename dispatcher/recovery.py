"""Rebuilding a newly assigned partition's parked users from the park topic.

Before any live event of a partition is delivered, its park partition is read from the
checkpoint the group committed (``park-from=<offset>``, see ``commits``) to the end it had
when the partition was assigned; meanwhile its live events are held in the buffer. Then they
flow, and a parked user's live events go on to the park behind its parked ones: no event of a
user overtakes an earlier one across restarts and partition moves.

After recovery the same reader goes on reading the park for ``replay-request`` records (from
``dispatcher replay``), which the replayer answers.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from confluent_kafka import KafkaError

from dispatcher import park_records
from dispatcher.buffer import Buffer
from dispatcher.commits import parse_checkpoint
from dispatcher.lookups import Lookups, NoSuchTopic, ask_until_answered
from dispatcher.park_reader import ParkReader
from dispatcher.park_store import ReadRecord, decode_message
from dispatcher.parking import ParkBook, recover
from dispatcher.partitions import Partitions
from dispatcher.replayer import Replayer

__all__ = ["ParkRecovery"]

log = logging.getLogger(__name__)


class ParkRecovery:
    """Reads one worker's park partitions: recovery on assignment, then replay requests."""

    def __init__(
        self,
        *,
        name: str,
        topic: str,
        group_id: str,
        park_topic: str,
        park_made: Callable[[], bool],
        lookups: Lookups,
        reader_factory: Callable[[], ParkReader],
        partitions: Partitions,
        book: ParkBook,
        buffer: Buffer,
        replayer: Replayer,
    ) -> None:
        self._name = name
        self._topic = topic
        self._group_id = group_id
        self._park_topic = park_topic
        self._park_made = park_made
        self._unread: set[int] = set()
        """Partitions recovered while the park topic did not exist: read once it does."""
        self._lookups = lookups
        self._reader_factory = reader_factory
        self._reader: ParkReader | None = None
        self._partitions = partitions
        self._book = book
        self._buffer = buffer
        self._replayer = replayer

    def open(self) -> None:
        self._reader = self._reader_factory()

    def close(self) -> None:
        """Close the reader (blocking: call it off the loop)."""
        if self._reader is not None:
            self._reader.close()

    async def recover(self, partition: int, epoch: int) -> None:
        """Read ``partition``'s park from its checkpoint to its end before any live event of
        it is delivered (the records arrive through ``poll``)."""
        reader = self._reader
        assert reader is not None

        async def lookup() -> tuple[int | None, tuple[int, int]]:
            committed = await self._lookups.committed(self._topic, partition)
            checkpoint = parse_checkpoint(committed.metadata)
            return checkpoint, await self._lookups.watermarks(self._park_topic, partition)

        try:
            found = await ask_until_answered(
                lookup,
                still_wanted=lambda: self._partitions.current(partition, epoch) is not None,
                what="park", name=self._name, partition=partition,
            )  # fmt: skip
        except NoSuchTopic:
            # Made when the destination first parks a user: nobody was ever parked here.
            log.debug(
                "no park topic destination=%s topic=%s; nothing to recover",
                self._name, self._park_topic,
            )  # fmt: skip
            if self._partitions.current(partition, epoch) is not None:
                self._unread.add(partition)
                self._recovered(partition)
            return
        state = self._partitions.current(partition, epoch)
        if found is None or state is None:
            return
        checkpoint, (low, high) = found
        start = max(low, checkpoint if checkpoint is not None else low)
        state.recover_until = high
        reader.assign(partition, min(start, high))
        if start >= high:
            self._book.note_end(partition, high)
            self._recovered(partition)

    def poll(self) -> None:
        """Apply what the reader fetched: recovered records, then replay requests."""
        reader = self._reader
        if reader is None:
            return
        if self._unread and self._park_made():
            self._read_new_park(reader)
        for message in reader.poll():
            error, partition = message.error(), message.partition()
            if error is None:
                if (record := decode_message(message)) is not None:
                    self._apply(record)
            elif error.code() == KafkaError._PARTITION_EOF and partition is not None:
                state = self._partitions.get(partition)
                if state is not None and state.recovering and state.recover_until >= 0:
                    self._recovered(partition)

    def _apply(self, record: ReadRecord) -> None:
        state = self._partitions.get(record.partition)
        if state is None:
            return
        read = record.read
        if not state.recovering:
            if isinstance(read, park_records.ReadReplayRequest):
                self._replayer.request(read.request, record.partition, read.user, time.time())
            return
        if isinstance(read, park_records.ReadReplayRequest):
            state.requests[read.request] = read.user
        elif isinstance(read, park_records.ReadReplayDone):
            state.requests.pop(read.request, None)
        recover(self._book, record.partition, record.offset, read, now=time.time())
        if record.offset >= state.recover_until - 1:
            self._recovered(record.partition)

    def _read_new_park(self, reader: ParkReader) -> None:
        """Parking here made the park topic: replay requests may come for the partitions
        recovered before it existed, so read them too (from its start: nothing older)."""
        for partition in self._unread:
            reader.assign(partition, 0)
        self._unread.clear()

    def forget(self, partition: int) -> None:
        """The partition is no longer ours: stop reading its park."""
        self._unread.discard(partition)
        if self._reader is not None:
            self._reader.unassign(partition)

    def _recovered(self, partition: int) -> None:
        state = self._partitions.get(partition)
        if state is None or not state.recovering:
            return
        state.recovering = False
        parked = sum(1 for user in self._book.users() if user.partition == partition)
        if parked:
            log.info(
                "parked users recovered destination=%s partition=%d users=%d",
                self._name, partition, parked,
            )  # fmt: skip
        self._buffer.release(state)
        now = time.time()
        for request, user in state.requests.items():
            self._replayer.request(request, partition, user, now)
        state.requests.clear()
