"""Models the serving layer can load: Hugging Face ids/paths, or the offline tiny model."""

from quote_serving.models.tiny import TinyModelSpec, build_tiny_model, build_tiny_tokenizer, tiny_model_dir

__all__ = ["TinyModelSpec", "build_tiny_model", "build_tiny_tokenizer", "tiny_model_dir"]
