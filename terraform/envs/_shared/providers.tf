# Shared by envs/dev, staging and prod (symlinked). The state lives in an encrypted S3 bucket
# given at init: `tofu init -backend-config=../backend.hcl -backend-config=key=vitalflow/ENV.tfstate`.
# Provider credentials come from the environment (AWS_PROFILE, KUBECONFIG, PREFECT_API_KEY,
# CLICKHOUSE_TOKEN_KEY/CLICKHOUSE_TOKEN_SECRET), never from files here.
terraform {
  required_version = ">= 1.11"
  backend "s3" {
    encrypt      = true
    use_lockfile = true
  }
  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 6.0"
    }
    random = {
      source  = "hashicorp/random"
      version = "~> 3.7"
    }
    kubernetes = {
      source  = "hashicorp/kubernetes"
      version = "~> 2.36"
    }
    prefect = {
      source  = "PrefectHQ/prefect"
      version = "~> 2.13"
    }
    clickhouse = {
      source  = "ClickHouse/clickhouse"
      version = "~> 3.21"
    }
  }
}

provider "aws" {
  region = var.region
}

provider "kubernetes" {
  config_path    = var.kube_config_path
  config_context = var.kube_context
}

provider "prefect" {
  endpoint = var.prefect_api_url
}

provider "clickhouse" {
  organization_id = var.clickhouse_organization_id
}
