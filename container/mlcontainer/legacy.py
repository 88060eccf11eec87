"""XGBoost's legacy binary model format, read into XGBoost's JSON model schema.

SageMaker's built-in XGBoost 1.7-1 saves ``xgboost-model`` with ``Booster.save_model``
and no file extension, which XGBoost 1.x writes in its old binary format (later
versions write UBJSON). XGBoost 3.1 and later, this container's version, no longer read
that format, so :func:`to_json` rebuilds the document XGBoost 1.7 would have saved as
JSON from the same model, which every later version loads.

The format (XGBoost 1.x, little-endian, as its ``LearnerIO::SaveModel`` writes it)::

    "binf"
    LearnerModelParam   136 bytes: base_score f32, num_feature u32, num_class i32,
                        contain_extra_attrs i32, contain_eval_metrics i32,
                        major_version u32, minor_version u32, num_target u32,
                        boost_from_average i32 (1.7), reserved
    objective name, booster name    strings: u64 length, bytes
    GBTreeModelParam    160 bytes: num_trees i32, num_parallel_tree i32 (1.6; before:
                        num_roots, always 1), reserved..., size_leaf_vector i32 at 28
    per tree            TreeParam (148 bytes: num_roots, num_nodes, num_deleted,
                        max_depth, num_feature, size_leaf_vector i32, reserved),
                        nodes (20 bytes each: parent i32 (bit 31: is a left child),
                        left i32, right i32, split index u32 (bit 31: missing values go
                        left), split condition or leaf value f32),
                        stats (16 bytes each: loss_chg, sum_hess, base_weight f32,
                        leaf_child_cnt i32)
    tree_info           i32 per tree (its output group)
    weight_drop         dart only: u64 count, f32 each
    attributes          u64 count, then (key, value) strings; "objective" holds the
                        objective's JSON configuration, "metrics" the evaluation metrics

Standard library only: the server's master process may read a model before forking.
"""

from __future__ import annotations

import json
import struct
from typing import Any

from mlcontainer.errors import UserError

HEADER = b"binf"
_LEARNER_PARAM = struct.Struct("<fIiiiIIIi100x")  # 136 bytes
_GBTREE_PARAM = struct.Struct("<ii20xi128x")  # 160 bytes
_TREE_PARAM = struct.Struct("<iiiiii124x")  # 148 bytes
_NODE = struct.Struct("<iiiIf")  # 20 bytes
_STAT = struct.Struct("<fffi")  # 16 bytes
_ROOT_PARENT = 0x7FFFFFFF  # a root's parent in the JSON schema (-1 without the left bit)


def is_legacy(data: bytes) -> bool:
    """Whether ``data`` is a model in the legacy binary format."""
    return data[:4] == HEADER


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = memoryview(data)
        self.offset = 0

    def take(self, size: int) -> memoryview:
        if size < 0 or self.offset + size > len(self.data):
            raise UserError("the legacy XGBoost model is truncated or corrupt (it ends "
                            f"at byte {len(self.data)}, {size} more were expected at "
                            f"{self.offset})")
        piece = self.data[self.offset:self.offset + size]
        self.offset += size
        return piece

    def unpack(self, layout: struct.Struct) -> tuple[Any, ...]:
        return layout.unpack(self.take(layout.size))

    def array(self, code: str, count: int) -> list[Any]:
        return list(struct.unpack(f"<{count}{code}", self.take(4 * count)))

    def u64(self) -> int:
        return struct.unpack("<Q", self.take(8))[0]

    def string(self) -> str:
        return bytes(self.take(self.u64())).decode("utf-8", errors="replace")


def _float(value: float) -> str:
    # A float32 as XGBoost's JSON holds parameters: a string that reads back exactly.
    return repr(struct.unpack("<f", struct.pack("<f", value))[0])


def _tree(reader: _Reader, index: int) -> dict[str, Any]:
    _, num_nodes, num_deleted, _, num_feature, size_leaf_vector = reader.unpack(_TREE_PARAM)
    if num_nodes < 1:
        raise UserError(f"the legacy XGBoost model is corrupt: tree {index} has no nodes")
    nodes = list(_NODE.iter_unpack(reader.take(_NODE.size * num_nodes)))
    stats = list(_STAT.iter_unpack(reader.take(_STAT.size * num_nodes)))
    if size_leaf_vector > 1:
        raise UserError("the legacy XGBoost model has vector leaves (multiple targets); "
                        "this container serves single-output models")
    return {
        "base_weights": [s[2] for s in stats],
        "categories": [],
        "categories_nodes": [],
        "categories_segments": [],
        "categories_sizes": [],
        "default_left": [n[3] >> 31 for n in nodes],
        "id": index,
        "left_children": [n[1] for n in nodes],
        "loss_changes": [s[0] for s in stats],
        "parents": [n[0] & _ROOT_PARENT for n in nodes],
        "right_children": [n[2] for n in nodes],
        "split_conditions": [n[4] for n in nodes],
        "split_indices": [n[3] & _ROOT_PARENT for n in nodes],
        "split_type": [0] * num_nodes,
        "sum_hessian": [s[1] for s in stats],
        "tree_param": {
            "num_deleted": str(num_deleted),
            "num_feature": str(num_feature),
            "num_nodes": str(num_nodes),
            "size_leaf_vector": str(size_leaf_vector),
        },
    }


def to_json(data: bytes) -> dict[str, Any]:
    """The JSON model document of a legacy binary model (``gbtree`` or ``dart``).

    Raises :class:`UserError` naming what is unsupported or corrupt.
    """
    if not is_legacy(data):
        raise UserError("not a legacy binary XGBoost model (no 'binf' header)")
    reader = _Reader(data)
    reader.take(len(HEADER))
    (base_score, num_feature, num_class, extra_attrs, _, major, minor, num_target,
     boost_from_average) = reader.unpack(_LEARNER_PARAM)
    if major < 1:
        raise UserError(f"the model was saved by XGBoost {major}.{minor}, before 1.0, which "
                        "kept no objective configuration; retrain it with a current version")
    objective_name = reader.string()
    booster = reader.string()
    if booster not in ("gbtree", "dart"):
        raise UserError(f"the legacy XGBoost model uses the {booster!r} booster; this "
                        "container reads gbtree and dart models in that format (train with "
                        "booster gbtree, or with built-in XGBoost 3.0-5 or later, which "
                        "saves UBJSON)")
    num_trees, num_parallel_tree, size_leaf_vector = reader.unpack(_GBTREE_PARAM)
    if num_trees < 0:
        raise UserError("the legacy XGBoost model is corrupt: negative tree count")
    trees = [_tree(reader, i) for i in range(num_trees)]
    tree_info = reader.array("i", num_trees)
    weight_drop: list[float] = []
    if booster == "dart" and num_trees:
        count = reader.u64()
        if count != num_trees:
            raise UserError(f"the legacy XGBoost model is corrupt: {count} dart weights "
                            f"for {num_trees} trees")
        weight_drop = reader.array("f", count)
    attributes: dict[str, str] = {}
    if extra_attrs:
        for _ in range(reader.u64()):
            key = reader.string()
            attributes[key] = reader.string()
    if "objective" not in attributes:
        raise UserError("the legacy XGBoost model has no objective configuration")
    try:
        objective = json.loads(attributes.pop("objective"))
    except ValueError as err:
        raise UserError(f"the legacy XGBoost model's objective is not JSON: {err}") from None
    if objective.get("name") != objective_name:
        raise UserError(f"the legacy XGBoost model is corrupt: objective {objective_name!r} "
                        f"but configuration for {objective.get('name')!r}")
    attributes.pop("metrics", None)  # evaluation metrics: training configuration only
    model = {
        "gbtree_model_param": {
            "num_parallel_tree": str(num_parallel_tree if (major, minor) >= (1, 6) else 1),
            "num_trees": str(num_trees),
            "size_leaf_vector": str(size_leaf_vector),
        },
        "tree_info": tree_info,
        "trees": trees,
    }
    gradient_booster: dict[str, Any] = {"name": "gbtree", "model": model}
    if booster == "dart":
        gradient_booster = {"name": "dart", "gbtree": gradient_booster,
                            "weight_drop": weight_drop}
    learner_model_param = {
        "base_score": _float(base_score),
        "boost_from_average": str(boost_from_average if (major, minor) >= (1, 7) else 1),
        "num_class": str(num_class),
        "num_feature": str(num_feature),
        "num_target": str(max(num_target, 1)),
    }
    return {
        "learner": {
            "attributes": attributes,
            "feature_names": [],
            "feature_types": [],
            "gradient_booster": gradient_booster,
            "learner_model_param": learner_model_param,
            "objective": objective,
        },
        "version": [major, minor, 0],
    }
