"""in-toto statements and predicates: canonical bytes in, parsed views out. No crypto here."""

from modelsign.statements._json import canonical_bytes, load_json
from modelsign.statements._oms import (
    OMS_PREDICATE_TYPE,
    OMS_V01_PREDICATE_TYPE,
    manifest_from_statement,
    oms_statement,
)
from modelsign.statements._statement import (
    IN_TOTO_PAYLOAD_TYPE,
    IN_TOTO_STATEMENT_V1,
    Statement,
    Subject,
    make_statement,
    parse_statement,
)

__all__ = [
    "IN_TOTO_PAYLOAD_TYPE",
    "IN_TOTO_STATEMENT_V1",
    "OMS_PREDICATE_TYPE",
    "OMS_V01_PREDICATE_TYPE",
    "Statement",
    "Subject",
    "canonical_bytes",
    "load_json",
    "make_statement",
    "manifest_from_statement",
    "oms_statement",
    "parse_statement",
]
