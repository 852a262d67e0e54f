"""The original SDK's module name for bundling: `from quote_mod_sdk.serialization import serialize_mod`."""

from quote_mod_sdk.serialize import bundle_digest, load_mod, serialize_directory, serialize_mod

__all__ = ["bundle_digest", "load_mod", "serialize_directory", "serialize_mod"]
