"""Reference data: labelling structures with a reference calculator (reference-MD
generation and training pairs build on it)."""

from trajcast_engine.data.labels import labelled_copy

__all__ = ["labelled_copy"]
