"""Quote mod SDK: write event handlers that steer LLM generation token by token.

    from quote_mod_sdk import mod, Prefilled, ForwardPass, Added

    @mod
    def my_mod(event, actions, tokenizer):
        if isinstance(event, ForwardPass):
            return actions.noop()
        return actions.noop()

Modules: `events` (what a mod sees), `actions` (what it may return, and when), `mod` (the
decorator), `self_prompt`/`flow`/`strategies` (constrained self-prompting), `serialize`/`signing`
(bundles for the registry), `testing` (an offline simulator), `generation` (the request loop
every engine shares).
"""

from quote_mod_sdk.actions import (
    VALID_ACTIONS,
    Action,
    ActionBuilder,
    AdjustedLogits,
    AdjustedPrefill,
    AdjustLogits,
    AdjustPrefill,
    Backtrack,
    EmitError,
    ForceOutput,
    ForceTokens,
    ModAction,
    Noop,
    ToolCalls,
    for_event,
    validate_action,
)
from quote_mod_sdk.conversation import get_conversation, get_schemas, tool_call_pairs
from quote_mod_sdk.errors import (
    ConversationAccessError,
    InvalidActionError,
    ModFailedError,
    QuoteModError,
    SerializationError,
    SignatureError,
    SignatureVerificationError,
    StrategyError,
)
from quote_mod_sdk.events import Added, ContextInfo, Finished, ForwardPass, ModEvent, Prefilled, Sampled
from quote_mod_sdk.mod import Mod, ModCallable, create_mod, mod
from quote_mod_sdk.self_prompt import EraseMode, SelfPrompt, self_prompt_mod
from quote_mod_sdk.serialize import bundle_digest, load_mod, serialize_directory, serialize_mod
from quote_mod_sdk.signing import BundleSignature, KeyPair, keygen, sign_bundle, verify_bundle
from quote_mod_sdk.tensor import Tensor
from quote_mod_sdk.tokenizer import tokenize

__version__ = "0.1.0"

__all__ = [
    "VALID_ACTIONS",
    "Action",
    "ActionBuilder",
    "Added",
    "AdjustLogits",
    "AdjustPrefill",
    "AdjustedLogits",
    "AdjustedPrefill",
    "Backtrack",
    "BundleSignature",
    "ContextInfo",
    "ConversationAccessError",
    "EmitError",
    "EraseMode",
    "Finished",
    "ForceOutput",
    "ForceTokens",
    "ForwardPass",
    "InvalidActionError",
    "KeyPair",
    "Mod",
    "ModAction",
    "ModCallable",
    "ModEvent",
    "ModFailedError",
    "Noop",
    "Prefilled",
    "QuoteModError",
    "Sampled",
    "SelfPrompt",
    "SerializationError",
    "SignatureError",
    "SignatureVerificationError",
    "StrategyError",
    "Tensor",
    "ToolCalls",
    "__version__",
    "bundle_digest",
    "create_mod",
    "for_event",
    "get_conversation",
    "get_schemas",
    "keygen",
    "load_mod",
    "mod",
    "self_prompt_mod",
    "serialize_directory",
    "serialize_mod",
    "sign_bundle",
    "tokenize",
    "tool_call_pairs",
    "validate_action",
    "verify_bundle",
]
