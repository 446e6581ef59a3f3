"""Lineage: verify the chain from a model back to its foundation model, link by link.

:func:`verify_lineage` walks the provenance in ``claims.jsonl`` upward and returns a frozen
:class:`LineageGraph`: every ancestor resolved by the root digest its child recorded (local
``upstream`` directories, a provenance store filled with :func:`store_add`, or the Hugging Face
Hub through a :class:`HubClient`), verified on its *own* signature under the :class:`ParentRule`
chosen for it, its digest compared with the child's record, its claims verified and followed.
A child never vouches for its parent.

Example::

    from modelsign.lineage import ParentRule, SignerRule, verify_lineage
    graph = verify_lineage("q4", key="release.pub", store="provenance-store",
                           parents=[ParentRule("*", SignerRule(keys=["release.pub"]))])
    for node in graph.failures:
        print(node.label(), node.state, node.reason)
"""

from modelsign.lineage._hf import HuggingFaceHub
from modelsign.lineage._hub import (
    HubClient,
    HubComparison,
    HubFiles,
    HubRef,
    RemoteBudgetExceeded,
    RemoteMeter,
    parse_hub_uri,
)
from modelsign.lineage._model import (
    DEFAULT_MAX_DEPTH,
    LINEAGE_SCHEMA_ID,
    NODE_STATES,
    Budget,
    BytesCheck,
    LineageEdge,
    LineageGraph,
    LineageNode,
    NodeState,
    ParentRule,
    Role,
    SignerRule,
    Source,
    rule_for,
)
from modelsign.lineage._store import MANIFEST_FILE, StoreEntry, store_add, store_entry
from modelsign.lineage._walk import verify_lineage, verify_with_rule

__all__ = [
    "DEFAULT_MAX_DEPTH",
    "LINEAGE_SCHEMA_ID",
    "MANIFEST_FILE",
    "NODE_STATES",
    "Budget",
    "BytesCheck",
    "HubClient",
    "HubComparison",
    "HubFiles",
    "HubRef",
    "HuggingFaceHub",
    "LineageEdge",
    "LineageGraph",
    "LineageNode",
    "NodeState",
    "ParentRule",
    "RemoteBudgetExceeded",
    "RemoteMeter",
    "Role",
    "SignerRule",
    "Source",
    "StoreEntry",
    "parse_hub_uri",
    "rule_for",
    "store_add",
    "store_entry",
    "verify_lineage",
    "verify_with_rule",
]
