"""Lambda code that stack builders embed in templates (``ZipFile``), minified.

Code here must fit CloudFormation's 4,096-character limit for inline code once its
docstrings and comments are stripped (:func:`inline_code`), use only the standard library
and the Lambda runtime's boto3, and be importable for tests like any module. Functions
whose stacks are packaged from ``lambdas/`` live there instead; these are the ones a
Service Catalog product must carry inside its own template.
"""

from __future__ import annotations

import ast
from importlib.resources import files

#: CloudFormation's limit on ``AWS::Lambda::Function.Code.ZipFile``.
ZIPFILE_LIMIT = 4096


def inline_code(module: str) -> str:
    """The source of ``mlops_templates/inline/<module>.py`` without docstrings or comments."""
    source = files("mlops_templates.inline").joinpath(f"{module}.py").read_text("utf-8")
    tree = ast.parse(source)
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (
            isinstance(body, list)
            and body
            and isinstance(body[0], ast.Expr)
            and isinstance(body[0].value, ast.Constant)
            and isinstance(body[0].value.value, str)
        ):
            node.body = body[1:] or [ast.Pass()]
    code = ast.unparse(tree) + "\n"
    if len(code) > ZIPFILE_LIMIT:
        raise ValueError(f"inline/{module}.py is {len(code)} characters minified, over {ZIPFILE_LIMIT}")
    return code
