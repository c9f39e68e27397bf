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
