"""`requests.LoopWakes`: the engine's wake-ups of waiting clients, held back during a step and sent
once per event loop when it ends. A client whose loop closed meanwhile (it went away) must not
keep the others' wake-ups from going out, and a publish from another thread is never held."""

from __future__ import annotations

import asyncio
import threading

from quote_mod_sdk.generation import GenerationParams
from quote_serving.runtime.requests import GenerationRequest, LoopWakes, RequestHandle, Snapshot


def _handle(loop: asyncio.AbstractEventLoop, rid: str) -> RequestHandle:
    return RequestHandle(GenerationRequest(rid, [1, 2], GenerationParams(max_tokens=4)), loop)


def test_held_wakes_go_out_once_the_step_ends_even_when_a_loop_closed() -> None:
    gone = asyncio.new_event_loop()
    gone_handle = _handle(gone, "gone")
    gone.close()  # its client left: waking it raises RuntimeError

    async def main() -> None:
        loop = asyncio.get_running_loop()
        handles = [_handle(loop, f"r{i}") for i in range(3)]
        wakes = LoopWakes()

        def engine_step() -> None:
            with wakes.held():
                gone_handle.publish(Snapshot(output=(5,)), wakes)
                for i, handle in enumerate(handles):
                    handle.publish(Snapshot(output=(i,)), wakes)
                    assert not handle._changed.is_set()  # held until the step ends
                # another thread's publish (an admission failure, say) is sent at once
                other = _handle(loop, "other")
                thread = threading.Thread(
                    target=other.publish, args=(Snapshot(finished=True),), kwargs={"wakes": wakes}
                )
                thread.start()
                thread.join()
                assert not wakes._held.get(loop) or other._changed not in wakes._held[loop]

        await asyncio.to_thread(engine_step)
        got = await asyncio.wait_for(asyncio.gather(*(h.next_snapshot() for h in handles)), 5)
        assert [s.output for s in got] == [(0,), (1,), (2,)]

    asyncio.run(main())
