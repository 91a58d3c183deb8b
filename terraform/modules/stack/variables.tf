variable "environment" {
  description = "Environment name: dev, staging or prod."
  type        = string
}

variable "tags" {
  description = "Tags put on every taggable resource of the environment, besides Environment and Project."
  type        = map(string)
  default     = {}
}

variable "storage_profile" {
  description = "vitalflow storage profile of the environment: postgres, lakehouse, clickhouse or mixed (decides whether ClickHouse is provisioned)."
  type        = string
  validation {
    condition     = contains(["postgres", "lakehouse", "clickhouse", "mixed"], var.storage_profile)
    error_message = "storage_profile is postgres, lakehouse, clickhouse or mixed."
  }
}

variable "network" {
  description = "VPC CIDR and availability zone => private subnet CIDR."
  type = object({
    vpc_cidr        = string
    private_subnets = map(string)
  })
}

variable "database" {
  description = "PostgreSQL: variant (rds or kubernetes), read replicas, size and protection."
  type = object({
    variant             = string
    replicas            = number
    instance_class      = optional(string, "db.t4g.medium")
    storage_gb          = number
    max_storage_gb      = optional(number, 500)
    multi_az            = bool
    backup_days         = number
    deletion_protection = bool
    kubernetes_cpu      = optional(string, "1")
    kubernetes_memory   = optional(string, "2Gi")
  })
}

variable "object_store" {
  description = "Bucket lifecycle: days to infrequent access and Glacier (0: never), old versions kept, audit retention, whether destroy may empty the bucket."
  type = object({
    raw_infrequent_access_days = number
    raw_glacier_days           = number
    noncurrent_version_days    = number
    audit_retention_days       = number
    force_destroy              = bool
  })
}

variable "clickhouse" {
  description = "ClickHouse (used by the clickhouse and mixed profiles): variant (cloud or self_managed), memory bounds (cloud) or layout (self_managed), allowed CIDRs (cloud)."
  type = object({
    variant       = string
    min_memory_gb = optional(number, 8)
    max_memory_gb = optional(number, 16)
    idle_scaling  = optional(bool, false)
    replicas      = optional(number, 2)
    storage_gb    = optional(number, 100)
    allowed_cidrs = optional(list(string), [])
  })
}

variable "prefect" {
  description = "Prefect: API URL, work pool concurrency, worker count and the image (pinned by digest) flows run in."
  type = object({
    api_url             = string
    pool_concurrency    = number
    workers             = number
    image               = string
    api_key_secret_name = optional(string, "")
    job_memory          = optional(string, "4Gi")
  })
}

variable "namespace" {
  description = "Kubernetes namespace of the workers (and of Patroni / self-managed ClickHouse)."
  type        = string
  default     = "vitalflow"
}

variable "alert_emails" {
  description = "Addresses receiving alerts."
  type        = list(string)
  default     = []
}

variable "existing_secret_arns" {
  description = "Secrets carried over instead of generated (name => ARN), e.g. a pseudonym_key shared with another installation."
  type        = map(string)
  default     = {}
}
