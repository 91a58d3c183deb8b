# Shared by envs/dev, staging and prod (symlinked); values in each environment's terraform.tfvars
# (no secrets there: secrets are generated into Secrets Manager or read from it).
variable "region" {
  description = "AWS region of the environment."
  type        = string
}

variable "kube_config_path" {
  description = "kubeconfig of the cluster running the Prefect workers (and Patroni / self-managed ClickHouse)."
  type        = string
  default     = "~/.kube/config"
}

variable "kube_context" {
  description = "kubeconfig context of the environment's cluster."
  type        = string
}

variable "prefect_api_url" {
  description = "PREFECT_API_URL of the environment's Prefect server or Cloud workspace."
  type        = string
}

variable "clickhouse_organization_id" {
  description = "ClickHouse Cloud organisation id (not a secret; the API key comes from CLICKHOUSE_TOKEN_KEY/CLICKHOUSE_TOKEN_SECRET)."
  type        = string
  default     = ""
}

variable "image" {
  description = "vitalflow container image pinned by digest (repository@sha256:...)."
  type        = string
}

variable "alert_emails" {
  description = "Addresses receiving the environment's alerts."
  type        = list(string)
  default     = []
}
