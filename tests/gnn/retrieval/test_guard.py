"""gnn.retrieval.guard: readers share, a writer waits for them and then holds everyone off."""

from __future__ import annotations

import threading
import time

from gnn.retrieval.guard import ReadWriteLock


def test_readers_share_and_a_writer_waits_for_them_then_holds_new_readers() -> None:
    lock = ReadWriteLock()
    events: list[str] = []
    first_in, release = threading.Event(), threading.Event()

    def reader(name: str, hold: threading.Event | None = None) -> None:
        with lock.reading():
            events.append(f"{name} in")
            if hold is not None:
                first_in.set()
                hold.wait(5)
            events.append(f"{name} out")

    def writer() -> None:
        with lock.writing():
            events.append("writer in")
            time.sleep(0.05)
            events.append("writer out")

    r1 = threading.Thread(target=reader, args=("r1", release))
    r1.start()
    assert first_in.wait(5)
    w = threading.Thread(target=writer)
    w.start()
    time.sleep(0.05)  # the writer is waiting for r1
    r2 = threading.Thread(target=reader, args=("r2",))
    r2.start()
    time.sleep(0.05)  # r2 waits behind the writer
    assert events == ["r1 in"]
    release.set()
    for t in (r1, w, r2):
        t.join(5)
    assert events == ["r1 in", "r1 out", "writer in", "writer out", "r2 in", "r2 out"]
