"""Which files of a verified model are pickle-based: the detector lives in
:mod:`modelsign._sniff`, below both the policy layer and the transformers integration, so the
policy's ``serialization.pickle`` rule and ``from_pretrained(pickle=...)`` share one definition."""

from __future__ import annotations

from modelsign._sniff import PICKLE_FORMATS, FileFormat, Sniffed, sniff, sniff_file

__all__ = ["PICKLE_FORMATS", "FileFormat", "Sniffed", "sniff", "sniff_file"]
