# Non-secret settings of prod. Secrets are generated into, or read from, Secrets Manager.
region                     = "eu-central-1"
kube_context               = "vitalflow-prod"
prefect_api_url            = "https://prefect.prod.example.org/api"
image                      = "registry.example.org/vitalflow@sha256:0000000000000000000000000000000000000000000000000000000000000000"
clickhouse_allowed_cidrs   = ["203.0.113.10/32"]
clickhouse_organization_id = "00000000-0000-0000-0000-000000000000"
