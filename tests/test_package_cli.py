"""``aws cloudformation package`` (the real AWS CLI) turns the rendered deploy-prd template
into one CloudFormation can deploy: every ``CodeUri`` becomes an uploaded S3 object that
holds the function's ``app.py``. S3 is a moto server on 127.0.0.1."""

from __future__ import annotations

import io
import shutil
import zipfile
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml

from mlops_templates import render
from mlops_templates.stacks import deploy_prd
from mlops_templates.stacks.deploy_prd.names import MONITOR_WINDOW

from .conftest import FAKE_CREDENTIALS, REPO, aws_cli

BUCKET = "package-artifacts"
FUNCTION_DIRS = ("api", "pre_traffic_hook", "post_traffic_hook", "monitor_window")

pytestmark = pytest.mark.slow


class _CfnLoader(yaml.SafeLoader):
    """Reads short-form intrinsics as their long form (``!Ref x`` -> ``{"Ref": x}``), so
    templates written in either form compare equal."""


def _tagged(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    if suffix == "Ref":
        return {"Ref": value}
    if suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    return {f"Fn::{suffix}": value}


_CfnLoader.add_multi_constructor("!", _tagged)


def _layout(root: Path, example_config) -> Path:
    """``root/templates/deploy-prd.yaml`` with the functions' code at ``root/lambdas``,
    as in the repository."""
    render.write(render.render(example_config, ["deploy-prd"]), root / "templates")
    for name in FUNCTION_DIRS:
        source = REPO / "lambdas" / name
        target = root / "lambdas" / name
        if (source / "app.py").is_file():
            shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            # The function's code is not in this checkout yet: a stand-in handler.
            target.mkdir(parents=True)
            (target / "app.py").write_text("def handler(event, context):\n    return {}\n")
    return root / "templates" / "deploy-prd.yaml"


def test_package_uploads_every_function_and_rewrites_code_uri(
    tmp_path: Path, moto_server: str, example_config
) -> None:
    template = _layout(tmp_path, example_config)
    aws_cli(moto_server, "s3api", "create-bucket", "--bucket", BUCKET)
    packaged_path = tmp_path / "packaged.yaml"
    aws_cli(
        moto_server,
        "cloudformation",
        "package",
        "--template-file",
        str(template),
        "--s3-bucket",
        BUCKET,
        "--s3-prefix",
        "deploy-prd",
        "--output-template-file",
        str(packaged_path),
        cwd=tmp_path,
    )
    source = yaml.load(template.read_text(encoding="utf-8"), Loader=_CfnLoader)
    packaged = yaml.load(packaged_path.read_text(encoding="utf-8"), Loader=_CfnLoader)
    assert packaged["Transform"] == deploy_prd.SAM_TRANSFORM
    s3 = boto3.client(
        "s3",
        endpoint_url=moto_server,
        region_name=FAKE_CREDENTIALS["AWS_DEFAULT_REGION"],
        aws_access_key_id=FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        aws_session_token=FAKE_CREDENTIALS["AWS_SESSION_TOKEN"],
    )
    functions = {
        logical_id: resource
        for logical_id, resource in packaged["Resources"].items()
        if resource["Type"] == "AWS::Serverless::Function"
    }
    assert set(functions) == {
        deploy_prd.API_FUNCTION,
        deploy_prd.PRE_TRAFFIC_HOOK,
        deploy_prd.POST_TRAFFIC_HOOK,
        MONITOR_WINDOW,
    }
    for logical_id, resource in functions.items():
        code_uri = resource["Properties"]["CodeUri"]
        assert code_uri.startswith(f"s3://{BUCKET}/deploy-prd/"), (logical_id, code_uri)
        key = code_uri.removeprefix(f"s3://{BUCKET}/")
        body = s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()
        with zipfile.ZipFile(io.BytesIO(body)) as archive:
            assert "app.py" in archive.namelist(), (logical_id, archive.namelist())
            code_dir = source["Resources"][logical_id]["Properties"]["CodeUri"].strip("/")
            expected = (template.parent / code_dir / "app.py").read_bytes()
            assert archive.read("app.py") == expected, logical_id
        # Only CodeUri changes: the deployment settings survive packaging.
        unchanged = {k: v for k, v in resource["Properties"].items() if k != "CodeUri"}
        assert unchanged == {
            k: v for k, v in source["Resources"][logical_id]["Properties"].items() if k != "CodeUri"
        }
    # The four functions are four distinct archives.
    assert len({f["Properties"]["CodeUri"] for f in functions.values()}) == 4
