"""The private VPC the pipeline stack creates when ``network.create_vpc`` is on.

Two private subnets in two Availability Zones, no internet gateway: SageMaker jobs
and endpoints reach AWS through VPC endpoints only (interface endpoints for the
SageMaker API and runtime, STS, CloudWatch Logs and metrics, ECR, KMS, CodeDeploy and
Lambda; an S3 gateway endpoint). Flow logs go to a KMS-encrypted log group.
"""

from __future__ import annotations

from dataclasses import dataclass

from troposphere import GetAtt, GetAZs, Join, Ref, Select, Sub, Tags, Template, ec2, kms

from mlops_templates.config import Config
from mlops_templates.stacks import common
from mlops_templates.stacks.pipeline_iam import flow_logs_role, role_arn
from mlops_templates.stacks.pipeline_names import ProjectNames

VPC = "Vpc"
SUBNETS = ("PrivateSubnet1", "PrivateSubnet2")
ROUTE_TABLE = "PrivateRouteTable"
ENDPOINT_SECURITY_GROUP = "EndpointSecurityGroup"
WORKLOAD_SECURITY_GROUP = "WorkloadSecurityGroup"
FLOW_LOG_GROUP = "FlowLogGroup"
FLOW_LOG_ROLE = "FlowLogRole"
FLOW_LOG = "FlowLog"
S3_ENDPOINT = "S3GatewayEndpoint"

VPC_CIDR = "10.0.0.0/16"
SUBNET_CIDRS = ("10.0.0.0/19", "10.0.32.0/19")
HTTPS = 443

#: Interface endpoints of every AWS API the jobs, endpoints and functions placed in the
#: VPC call, without internet access: service suffix -> logical ID. The traffic hooks
#: report to CodeDeploy (``codedeploy``; Lambda deployments need only that one, not
#: ``codedeploy-commands-secure``: CodeDeploy user guide, VPC endpoints) and the
#: pre-traffic hook invokes the API version being deployed (``lambda``).
#: tests/test_pipeline.py checks this against the clients the functions create.
INTERFACE_ENDPOINTS: dict[str, str] = {
    "sagemaker.api": "SageMakerApiEndpoint",
    "sagemaker.runtime": "SageMakerRuntimeEndpoint",
    "sts": "StsEndpoint",
    "logs": "LogsEndpoint",
    "ecr.api": "EcrApiEndpoint",
    "ecr.dkr": "EcrDockerEndpoint",
    "monitoring": "MonitoringEndpoint",
    "kms": "KmsEndpoint",
    "codedeploy": "CodeDeployEndpoint",
    "lambda": "LambdaEndpoint",
}


#: Why each network resource exists (Metadata Context).
WHY: dict[str, str] = {
    VPC: "Private network of the project's SageMaker jobs and endpoints (no internet gateway)",
    ROUTE_TABLE: "Routes of the private subnets (local and the S3 gateway endpoint only)",
    ENDPOINT_SECURITY_GROUP: "Admits HTTPS from the VPC to the interface endpoints",
    WORKLOAD_SECURITY_GROUP: "Jobs and endpoints: HTTPS to the endpoints, traffic within a job",
    "WorkloadSecurityGroupSelfIngress": "Traffic between instances of a distributed training job",
    "WorkloadSecurityGroupSelfEgress": "Traffic between instances of a distributed training job",
    FLOW_LOG_GROUP: "Encrypted VPC flow logs",
    FLOW_LOG_ROLE: "Lets VPC Flow Logs write to the flow-log group",
    FLOW_LOG: "Records the VPC's traffic for audits",
    S3_ENDPOINT: "S3 access (data, artifacts, image layers) without internet",
    **{s: "Private subnet in its own Availability Zone" for s in SUBNETS},
    **{f"{s}RouteTableAssociation": "Attaches the private route table" for s in SUBNETS},
    **{
        logical_id: f"Private access to the {service} API without internet"
        for service, logical_id in INTERFACE_ENDPOINTS.items()
    },
}


@dataclass(frozen=True)
class Network:
    """What the rest of the pipeline stack needs from the created VPC."""

    vpc_id: Ref
    subnet_ids: list[Ref]
    security_group_id: Ref


def _tags(base_tags: Tags, name: Sub) -> Tags:
    return base_tags + Tags(Name=name)


def _https_within_vpc(description: str) -> ec2.SecurityGroupRule:
    """HTTPS between the workloads and the interface endpoints, which share the VPC's range."""
    return ec2.SecurityGroupRule(
        Description=description, IpProtocol="tcp", FromPort=HTTPS, ToPort=HTTPS, CidrIp=VPC_CIDR
    )


def add_vpc(
    template: Template,
    config: Config,
    names: ProjectNames,
    key: kms.Key,
    tags: Tags,
) -> Network:
    """Add the VPC, its subnets, endpoints, security groups and flow logs."""
    vpc = template.add_resource(
        ec2.VPC(
            VPC,
            CidrBlock=VPC_CIDR,
            EnableDnsHostnames=True,  # private DNS names of the interface endpoints
            EnableDnsSupport=True,
            Tags=_tags(tags, names.name("vpc")),
        )
    )
    route_table = template.add_resource(
        ec2.RouteTable(ROUTE_TABLE, VpcId=Ref(vpc), Tags=_tags(tags, names.name("private")))
    )
    subnets = []
    for index, (logical_id, cidr) in enumerate(zip(SUBNETS, SUBNET_CIDRS, strict=True)):
        subnet = template.add_resource(
            ec2.Subnet(
                logical_id,
                VpcId=Ref(vpc),
                CidrBlock=cidr,
                AvailabilityZone=Select(index, GetAZs("")),
                MapPublicIpOnLaunch=False,
                Tags=_tags(tags, names.name(f"private-{index + 1}")),
            )
        )
        template.add_resource(
            ec2.SubnetRouteTableAssociation(
                f"{logical_id}RouteTableAssociation",
                SubnetId=Ref(subnet),
                RouteTableId=Ref(route_table),
            )
        )
        subnets.append(subnet)

    workload_sg = template.add_resource(
        ec2.SecurityGroup(
            WORKLOAD_SECURITY_GROUP,
            GroupDescription="SageMaker jobs and endpoints of the project",
            VpcId=Ref(vpc),
            SecurityGroupEgress=[_https_within_vpc("HTTPS to the VPC endpoints")],
            Tags=_tags(tags, names.name("workload")),
        )
    )
    # Distributed training talks between instances of the same job.
    template.add_resource(
        ec2.SecurityGroupIngress(
            "WorkloadSecurityGroupSelfIngress",
            GroupId=Ref(workload_sg),
            Description="Traffic between instances of one training job",
            IpProtocol="-1",
            SourceSecurityGroupId=Ref(workload_sg),
        )
    )
    template.add_resource(
        ec2.SecurityGroupEgress(
            "WorkloadSecurityGroupSelfEgress",
            GroupId=Ref(workload_sg),
            Description="Traffic between instances of one training job",
            IpProtocol="-1",
            DestinationSecurityGroupId=Ref(workload_sg),
        )
    )
    endpoint_sg = template.add_resource(
        ec2.SecurityGroup(
            ENDPOINT_SECURITY_GROUP,
            GroupDescription="Interface VPC endpoints of the project",
            VpcId=Ref(vpc),
            SecurityGroupIngress=[_https_within_vpc("HTTPS from the VPC")],
            # Endpoints only answer; an unroutable rule replaces the default allow-all egress.
            SecurityGroupEgress=[
                ec2.SecurityGroupRule(
                    Description="No outbound traffic",
                    IpProtocol="icmp",
                    FromPort=252,
                    ToPort=86,
                    CidrIp="255.255.255.255/32",
                )
            ],
            Tags=_tags(tags, names.name("endpoints")),
        )
    )
    for service, logical_id in INTERFACE_ENDPOINTS.items():
        template.add_resource(
            ec2.VPCEndpoint(
                logical_id,
                VpcId=Ref(vpc),
                VpcEndpointType="Interface",
                ServiceName=Sub(f"com.amazonaws.${{AWS::Region}}.{service}"),
                SubnetIds=[Ref(s) for s in subnets],
                SecurityGroupIds=[Ref(endpoint_sg)],
                PrivateDnsEnabled=True,
            )
        )
    template.add_resource(
        ec2.VPCEndpoint(
            S3_ENDPOINT,
            VpcId=Ref(vpc),
            VpcEndpointType="Gateway",
            ServiceName=Sub("com.amazonaws.${AWS::Region}.s3"),
            RouteTableIds=[Ref(route_table)],
        )
    )

    group = template.add_resource(
        common.log_group(
            FLOW_LOG_GROUP,
            config,
            "network",
            key,
            config.pipeline.log_retention_days,
            name=Sub(
                f"/{names.prefix}/${{SageMakerProjectName}}/vpc-flow-logs-${{Suffix}}",
                Suffix=common.stack_suffix(),
            ),
        )
    )
    group.Tags = tags
    role = template.add_resource(flow_logs_role(FLOW_LOG_ROLE, names, GetAtt(group, "Arn"), tags))
    template.add_resource(
        ec2.FlowLog(
            FLOW_LOG,
            ResourceId=Ref(vpc),
            ResourceType="VPC",
            TrafficType="ALL",
            LogDestinationType="cloud-watch-logs",
            LogGroupName=Ref(group),
            DeliverLogsPermissionArn=role_arn(role),
            Tags=_tags(tags, names.name("flow-logs")),
        )
    )
    return Network(
        vpc_id=Ref(vpc),
        subnet_ids=[Ref(s) for s in subnets],
        security_group_id=Ref(workload_sg),
    )


def subnet_list(network: Network) -> Join:
    return Join(",", network.subnet_ids)
