"""The faust app of every processor, and the flow control that keeps fetched records buffered."""

from pathlib import Path

from faust.transport.drivers import aiokafka as aiokafka_driver
from faust.types import TP
from mode.utils.queues import FlowControlEvent, FlowControlQueue

from schemas.settings import CommonSettings, Environment
from stream_processors.faust_app import Consumer, FlowControl, Transport, create_faust_app


def buffered(flow: FlowControlEvent) -> FlowControlQueue[str]:
    queue: FlowControlQueue[str] = FlowControlQueue(flow_control=flow, clear_on_resume=True)
    flow.resume()  # the first start: flow is created suspended
    queue.put_nowait("record fetched after the seek")
    return queue


async def test_faust_empties_buffers_when_flow_resumes_that_was_never_suspended() -> None:
    # Why FlowControl exists: faust's recovery resumes flow a second time after seeking the
    # stream partitions, and the stock event empties the buffers again, records included.
    flow = FlowControlEvent()
    queue = buffered(flow)
    flow.resume()
    assert queue.qsize() == 0


async def test_resuming_running_flow_keeps_the_buffered_records() -> None:
    flow = FlowControl()
    queue = buffered(flow)
    flow.resume()
    assert queue.qsize() == 1


async def test_resuming_after_a_suspension_still_drops_what_was_buffered_before_it() -> None:
    flow = FlowControl()
    queue = buffered(flow)
    flow.suspend()
    assert not flow.is_active()
    flow.resume()
    assert flow.is_active()
    assert queue.qsize() == 0


async def test_every_processor_app_has_both_corrections(tmp_path: Path) -> None:
    common = CommonSettings(env=Environment.TEST, state_dir=tmp_path, topic_prefix="t.")
    app = create_faust_app(
        common, app_id="unit", web_port=6099, session_timeout_seconds=10, heartbeat_interval_seconds=3
    )
    assert isinstance(app.flow_control, FlowControl)
    assert isinstance(app.transport, Transport)
    assert Transport.Consumer is Consumer
    assert app.conf.id == "t.unit"
    assert (tmp_path / "faust").is_dir()
    queue = app.FlowControlQueue(maxsize=10, clear_on_resume=True)
    app.flow_control.resume()
    queue.put_nowait("record")
    app.flow_control.resume()
    assert queue.qsize() == 1


async def test_the_consumer_fetches_for_a_copy_of_the_active_partitions(monkeypatch) -> None:
    # aiokafka re-reads the set while it waits for a fetch, and reads an empty set as "every
    # partition": faust's live set, emptied by recovery meanwhile, made it return records that
    # faust then discarded.
    asked: list[object] = []

    async def fetch(self, active_partitions, timeout):
        asked.append(active_partitions)
        return {}

    monkeypatch.setattr(aiokafka_driver.Consumer, "_getmany", fetch)
    live = {TP("metrics", 0)}
    await Consumer._getmany(object.__new__(Consumer), live, 1.0)
    live.clear()
    assert asked == [{TP("metrics", 0)}]
    await Consumer._getmany(object.__new__(Consumer), None, 1.0)  # client-only apps: no filter
    assert asked[-1] is None
