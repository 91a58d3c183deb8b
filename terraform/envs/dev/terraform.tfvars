# Non-secret settings of dev. Secrets are generated into, or read from, Secrets Manager.
region          = "eu-central-1"
kube_context    = "vitalflow-dev"
prefect_api_url = "https://prefect.dev.example.org/api"
image           = "registry.example.org/vitalflow@sha256:0000000000000000000000000000000000000000000000000000000000000000"
