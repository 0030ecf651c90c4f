"""A delivery uploads several objects at once, and is still guarded object by object, in order.

Real S3 over HTTP (moto's server). The client is wrapped only to watch (and, where a test says so,
hold or break) its PUTs: what the bucket holds afterwards is read back from the server.
"""

from __future__ import annotations

import hashlib
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from handoff.errors import DeliveryError, DeliveryStopped
from handoff.storage import deliver

FILES = 6


class Watched:
    """An S3 client whose PUTs are recorded, and may wait for each other or fail, by key."""

    def __init__(self, real: Any, meet: int = 0, fail: str | None = None, slow: str | None = None,
                 patience: float = 5.0) -> None:  # fmt: skip
        self.real, self.fail, self.slow = real, fail, slow
        self.meeting = threading.Barrier(meet, timeout=patience) if meet else None
        self.lock = threading.Lock()
        self.events: list[tuple[str, str]] = []
        self.in_flight = self.most_in_flight = 0
        self.failed = threading.Event()
        self.fail_once = threading.Event()  # a failing PUT fails once this is set
        self.fail_once.set()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)

    def put_object(self, **kw: Any) -> Any:
        key = kw["Key"]
        with self.lock:
            self.events.append(("put", key))
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            if self.meeting is not None:
                self.meeting.wait()  # only returns once that many PUTs are under way together
            if key == self.slow:
                time.sleep(0.5)
            if key == self.fail:
                assert self.fail_once.wait(5)
                self.failed.set()
                raise ConnectionResetError("connection reset (simulated)")
            return self.real.put_object(**kw)
        finally:
            with self.lock:
                self.in_flight -= 1


def _files(tmp_path: Path) -> list[tuple[str, Path, str]]:
    out = []
    for i in range(FILES):
        path = tmp_path / f"part-{i:05d}.parquet"
        path.write_bytes(f"file {i} ".encode() * 1000)
        out.append((f"o.v1/b/part-{i:05d}.parquet", path, hashlib.sha256(path.read_bytes()).hexdigest()))
    return out


def _target(s3: Any) -> deliver.Target:
    return deliver.Target(s3.name, "", s3.kms_key_id, "us-east-1", multipart_threshold=64 * 1024 * 1024)


class OrderedGuard:
    """A guard that records when it ran, asserts it never runs twice at once, and stops on call ``stop_at``."""

    def __init__(self, client: Watched, stop_at: int | None = None) -> None:
        self.client, self.stop_at, self.calls, self.busy = client, stop_at, 0, False

    def __call__(self) -> None:
        assert not self.busy, "two guard calls at once"
        self.busy = True
        try:
            time.sleep(0.01)
            self.calls += 1
            with self.client.lock:
                self.client.events.append(("guard", str(self.calls)))
            if self.calls == self.stop_at:
                raise DeliveryStopped("emergency stop set (test)")
        finally:
            self.busy = False


def test_objects_go_up_several_at_once_each_guarded_first_in_file_order(tmp_path: Path, s3: Any) -> None:
    client = Watched(deliver.s3_client("us-east-1"), meet=3)  # three PUTs must be under way together
    guard = OrderedGuard(client)
    files = _files(tmp_path)
    objects = deliver.upload_files(client, _target(s3), files, guard, at_once=3)
    assert [o.key for o in objects] == [k for k, _, _ in files]
    assert all(o.uploaded for o in objects) and client.most_in_flight == 3
    assert s3.object_keys() == sorted(k for k, _, _ in files)
    # Each file's guard ran before its PUT, and the guards ran in file order.
    guards = [i for i, (kind, _) in enumerate(client.events) if kind == "guard"]
    puts = {key: i for i, (kind, key) in enumerate(client.events) if kind == "put"}
    assert [client.events[i][1] for i in guards] == [str(n) for n in range(1, FILES + 1)]
    assert all(guards[n] < puts[key] for n, (key, _, _) in enumerate(files))


def test_one_at_a_time_never_overlaps(tmp_path: Path, s3: Any) -> None:
    client = Watched(deliver.s3_client("us-east-1"), meet=2, patience=1.0)
    with pytest.raises(DeliveryError, match="BrokenBarrierError"):  # no second PUT ever came to meet the first
        deliver.upload_files(client, _target(s3), _files(tmp_path), OrderedGuard(client), at_once=1)
    assert client.most_in_flight == 1 and s3.object_keys() == []


def test_a_stop_starts_nothing_more_and_the_objects_under_way_end_before_it_raises(tmp_path: Path, s3: Any) -> None:
    files = _files(tmp_path)
    client = Watched(deliver.s3_client("us-east-1"), slow=files[1][0])
    guard = OrderedGuard(client, stop_at=3)
    with pytest.raises(DeliveryStopped, match="emergency stop"):
        deliver.upload_files(client, _target(s3), files, guard, at_once=4)
    assert guard.calls == 3, "the stop was read once more, and no file after it was guarded"
    assert [k for kind, k in client.events if kind == "put"] == [files[0][0], files[1][0]]
    # The slow second object was under way when the stop came: it ended before the raise, nothing after.
    assert s3.object_keys() == [files[0][0], files[1][0]]
    time.sleep(0.6)
    assert s3.object_keys() == [files[0][0], files[1][0]], "nothing landed after upload_files returned"


def test_a_failed_upload_starts_nothing_more_and_raises_the_earliest_files_error(tmp_path: Path, s3: Any) -> None:
    files = _files(tmp_path)
    client = Watched(deliver.s3_client("us-east-1"), fail=files[0][0], slow=files[1][0])

    client.fail_once.clear()  # the first PUT fails while the third file's guard runs

    class SeesTheFailureAtTheThird(OrderedGuard):
        def __call__(self) -> None:
            if self.calls == 2:  # the third file's guard: by its end the first file's PUT has failed
                client.fail_once.set()
                assert client.failed.wait(5)
                time.sleep(0.1)
            super().__call__()

    guard = SeesTheFailureAtTheThird(client)
    with pytest.raises(DeliveryError, match=r"part-00000\.parquet: ConnectionResetError"):
        deliver.upload_files(client, _target(s3), files, guard, at_once=3)
    assert guard.calls == 3, "once the failure was seen, no further file was guarded"
    assert [k for kind, k in client.events if kind == "put"] == [k for k, _, _ in files[:3]]
    # The slow second object was under way: it ended before the raise; the failed first is not there.
    assert s3.object_keys() == [files[1][0], files[2][0]]


def test_a_file_changed_after_staging_stops_the_files_after_it(tmp_path: Path, s3: Any) -> None:
    files = _files(tmp_path)
    files[2][1].write_bytes(b"changed after validation")
    client = Watched(deliver.s3_client("us-east-1"))
    with pytest.raises(DeliveryError, match="part-00002.parquet: staged file changed since validation"):
        deliver.upload_files(client, _target(s3), files, OrderedGuard(client), at_once=4)
    assert s3.object_keys() == [files[0][0], files[1][0]]
