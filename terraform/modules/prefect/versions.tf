terraform {
  required_version = ">= 1.11"
  required_providers {
    prefect = {
      source  = "PrefectHQ/prefect"
      version = "~> 2.13"
    }
    kubernetes = {
      source  = "hashicorp/kubernetes"
      version = "~> 2.36"
    }
  }
}
