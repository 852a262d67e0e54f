"""Platform overview — Tool Call."""

from quote_mod_sdk import ActionBuilder, Prefilled, mod


@mod
def route_tools(event, actions: ActionBuilder, tokenizer):
    if isinstance(event, Prefilled):
        return actions.tool_calls([{
            "name": "search_docs",
            "arguments": {"query": "token injection"}
        }])
    return actions.noop()
