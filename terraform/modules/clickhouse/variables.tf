variable "name_prefix" {
  description = "Prefix of every resource name, e.g. vitalflow-prod."
  type        = string
}

variable "tags" {
  description = "Tags (ClickHouse Cloud) and labels (Kubernetes) put on every taggable resource."
  type        = map(string)
}

variable "variant" {
  description = "Where ClickHouse runs: cloud (ClickHouse Cloud service) or self_managed (ClickHouseInstallation for the Altinity operator on Kubernetes)."
  type        = string
  validation {
    condition     = contains(["cloud", "self_managed"], var.variant)
    error_message = "variant is cloud or self_managed."
  }
}

variable "password_secret_arn" {
  description = "Secrets Manager ARN of the default user's password (from network_and_secrets); read ephemerally, never stored in state."
  type        = string
}

variable "password_version" {
  description = "Bump after rotating the password secret so the service receives the new value."
  type        = number
  default     = 1
}

variable "cloud_region" {
  description = "Region of the ClickHouse Cloud service (cloud variant), e.g. eu-central-1."
  type        = string
  default     = "eu-central-1"
}

variable "cloud_min_memory_gb" {
  description = "Minimum memory per replica in GiB (cloud variant autoscaling)."
  type        = number
  default     = 8
}

variable "cloud_max_memory_gb" {
  description = "Maximum memory per replica in GiB (cloud variant autoscaling)."
  type        = number
  default     = 16
}

variable "cloud_idle_scaling" {
  description = "Let an idle cloud service scale to zero (fine for dev, not for dashboards)."
  type        = bool
  default     = false
}

variable "allowed_cidrs" {
  description = "CIDRs allowed to reach the cloud service (the workers' NAT addresses); never 0.0.0.0/0."
  type        = list(string)
}

variable "namespace" {
  description = "Kubernetes namespace of the self-managed installation."
  type        = string
  default     = "vitalflow"
}

variable "password_secret_name" {
  description = "Kubernetes secret (name/key) holding the default user's password for the self-managed variant, synced from Secrets Manager by the External Secrets operator."
  type        = string
  default     = "vitalflow-clickhouse/password"
}

variable "shards" {
  description = "Shards of the self-managed cluster."
  type        = number
  default     = 1
}

variable "replicas" {
  description = "Replicas per shard of the self-managed cluster."
  type        = number
  default     = 2
}

variable "storage_gb" {
  description = "Volume size per self-managed replica in GiB."
  type        = number
  default     = 100
}
