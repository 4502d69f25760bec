"""The faust app of every processor, and the flow control that keeps fetched records buffered."""

from pathlib import Path

from mode.utils.queues import FlowControlEvent, FlowControlQueue

from schemas.settings import CommonSettings, Environment
from stream_processors.faust_app import FlowControl, create_faust_app


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


async def test_every_processor_app_buffers_its_streams_under_that_flow_control(tmp_path: Path) -> None:
    common = CommonSettings(env=Environment.TEST, state_dir=tmp_path, topic_prefix="t.")
    app = create_faust_app(
        common, app_id="unit", web_port=6099, session_timeout_seconds=10, heartbeat_interval_seconds=3
    )
    assert isinstance(app.flow_control, FlowControl)
    assert app.conf.id == "t.unit"
    assert (tmp_path / "faust").is_dir()
    queue = app.FlowControlQueue(maxsize=10, clear_on_resume=True)
    app.flow_control.resume()
    queue.put_nowait("record")
    app.flow_control.resume()
    assert queue.qsize() == 1
