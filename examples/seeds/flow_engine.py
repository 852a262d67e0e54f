"""Platform overview — Self-Prompt Flow (the snippet's ENGINE and routes filled in)."""

from quote_mod_sdk import ActionBuilder, Added, ForwardPass, Prefilled, mod
from quote_mod_sdk.flow import FlowEngine, FlowQuestion, route_noop, route_tool

runtime_tool_question = FlowQuestion(
    name="runtime_tool_router",
    prompt="Should I call a runtime tool?",
    responses=["yes", "no"],
    erase_mode="all",
)
runtime_tool_question.on("yes", route_tool("search_docs", {"query": "token injection"}))
runtime_tool_question.on("no", route_noop())
ENGINE = FlowEngine(entry_question=runtime_tool_question)


@mod
def runtime_flow(event, actions: ActionBuilder, tokenizer):
    if isinstance(event, (Prefilled, ForwardPass, Added)):
        return ENGINE.handle_event(event, actions, tokenizer)
    return actions.noop()
