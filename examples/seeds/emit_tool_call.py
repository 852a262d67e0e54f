"""Building Mods guide — "Conversation & Tools": read the conversation, emit a tool call."""

from quote_mod_sdk import Prefilled, get_conversation, mod, tool_call_pairs


@mod
def emit_tool_call(event, actions, tokenizer):
    if isinstance(event, Prefilled):
        messages = get_conversation()
        pairs = tool_call_pairs(messages)
        if pairs:
            return actions.noop()  # the search already ran: let the model answer
        # Emit a tool call
        payload = {"id": f"call_{event.request_id.split('-')[0]}", "type": "function", "function": {"name": "search"}}
        return actions.tool_calls(payload)
    return actions.noop()
