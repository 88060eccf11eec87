"""The CI orchestrator's check: can the ci-oidc stack trust the CI issuer?

IAM allows one OIDC provider per issuer URL in an account, so the ci-oidc stack either
creates it (none exists yet, or the one that exists is its own) or names the existing one
(``pipeline.ci.oidc_provider_arn``), whose audiences must include the CI job's.
"""

from __future__ import annotations

from awacs import iam as iam_actions

from mlops_templates import naming
from mlops_templates.ci import oidc
from mlops_templates.doctor.context import FAIL, PASS, AwsError, Check, Context, _check

NAME = "CI OIDC provider"


def _tags(ctx: Context, arn: str) -> tuple[dict[str, str], list[str]]:
    found = ctx.call("iam", "get_open_id_connect_provider", iam_actions.GetOpenIDConnectProvider,
                     OpenIDConnectProviderArn=arn)
    return {t["Key"]: t["Value"] for t in found.get("Tags", [])}, list(found.get("ClientIDList", []))


def _audience(arn: str, audience: str, audiences: list[str]) -> Check | None:
    if audience in audiences:
        return None
    return Check(NAME, FAIL, f"{arn} does not accept the CI job's audience {audience} "
                 f"(it has: {', '.join(audiences) or 'none'})",
                 f"aws iam add-client-id-to-open-id-connect-provider --open-id-connect-provider-arn {arn} "
                 f"--client-id {audience}")


@_check(NAME)
def check_oidc_provider(ctx: Context) -> list[Check]:
    """With a GitHub or GitLab orchestrator: the issuer's provider exists where the config
    says it does, and accepts the CI job's audience (nothing to check for CodePipeline)."""
    config = ctx.config
    if config.pipeline.orchestrator == "codepipeline":
        return []
    trust = oidc.trust(config)
    providers = ctx.call("iam", "list_open_id_connect_providers",
                         iam_actions.ListOpenIDConnectProviders)["OpenIDConnectProviderList"]
    existing = next((p["Arn"] for p in providers if p["Arn"].endswith(f":oidc-provider/{trust.host}")), None)
    configured = config.pipeline.ci.oidc_provider_arn
    listing = "aws iam list-open-id-connect-providers"
    if configured is not None:
        if configured != existing:
            return [Check(NAME, FAIL, f"pipeline.ci.oidc_provider_arn {configured} does not exist in account "
                          f"{ctx.account}", f"remove the setting (the ci-oidc stack then creates the provider), "
                          f"or name the one `{listing}` shows for {trust.host}")]
        tags, audiences = _tags(ctx, configured)
        return [_audience(configured, trust.audience, audiences) or
                Check(NAME, PASS, f"{configured} exists and accepts audience {trust.audience}")]
    if existing is None:
        return [Check(NAME, PASS, f"no provider for {trust.issuer} yet: the ci-oidc stack creates it")]
    try:
        tags, audiences = _tags(ctx, existing)
    except AwsError as err:
        if not err.denied:
            raise
        tags, audiences = {}, []
    stack = naming.stack_name(config, "ci-oidc")
    if tags.get(naming.PROJECT_TAG) == ctx.base and ctx.stack_status(stack) not in (None, "DELETE_COMPLETE"):
        return [Check(NAME, PASS, f"{existing} is the one stack {stack} created")]
    return [Check(NAME, FAIL, f"the account already has {existing}: IAM allows one provider per issuer, so the "
                  "ci-oidc stack cannot create another",
                  f"set pipeline.ci.oidc_provider_arn: {existing} in the config, then `make templates`"
                  + ("" if trust.audience in audiences else
                     f"\nand let it accept the CI audience: aws iam add-client-id-to-open-id-connect-provider "
                     f"--open-id-connect-provider-arn {existing} --client-id {trust.audience}"))]
