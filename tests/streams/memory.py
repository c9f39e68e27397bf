"""An in-memory sink for the pipeline: what it would have sent, per topic, in order."""

import asyncio


class Memory:
    def __init__(self):
        self.sent: dict[str, list[tuple[bytes, bytes]]] = {}
        self.log: list[tuple[str, bytes]] = []  # (topic, value) across topics, in send order

    async def send_many(self, topic, messages):
        self.sent.setdefault(topic, []).extend(messages)
        self.log += [(topic, value) for _, value in messages]
        future = asyncio.get_running_loop().create_future()
        future.set_result(None)
        return [future]


def feed(pipe, values: list[bytes], every: int, received_at: float) -> None:
    """Encoded quote messages through ``pipe`` as partition 0 of its quotes topic, ``every``
    a batch (offsets in order), then its open epochs flushed, as a quiet stream's would be."""
    from streams.worker.decode import Record

    topic = pipe.settings.topics["quotes"]

    async def go():
        for i in range(0, len(values), every):
            await pipe.process([Record(v, topic, 0, i + j, received_at)
                                for j, v in enumerate(values[i : i + every])])  # fmt: skip
        await pipe.flush_idle(0.0)

    asyncio.run(go())
