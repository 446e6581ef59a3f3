"""Adapters over the public API for the places models are published and loaded.

Imported lazily: nothing here is loaded unless asked for (``modelsign.hf``,
``modelsign.transformers``)."""
