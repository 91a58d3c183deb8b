# Non-secret settings of staging. Secrets are generated into, or read from, Secrets Manager.
region          = "eu-central-1"
kube_context    = "vitalflow-staging"
prefect_api_url = "https://prefect.staging.example.org/api"
image           = "registry.example.org/vitalflow@sha256:0000000000000000000000000000000000000000000000000000000000000000"
