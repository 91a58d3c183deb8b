"""Provisioned environments: Terraform outputs to vitalflow settings, the local environment."""
