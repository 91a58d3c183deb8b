variable "name_prefix" {
  description = "Prefix of every resource name, e.g. vitalflow-prod."
  type        = string
}

variable "tags" {
  description = "Tags (AWS) and labels (Kubernetes) put on every taggable resource."
  type        = map(string)
}

variable "variant" {
  description = "Where PostgreSQL runs: rds (AWS RDS, Multi-AZ primary plus read replicas) or kubernetes (Patroni cluster through the Zalando postgres-operator)."
  type        = string
  validation {
    condition     = contains(["rds", "kubernetes"], var.variant)
    error_message = "variant is rds or kubernetes."
  }
}

variable "engine_version" {
  description = "PostgreSQL major version (vitalflow is tested on 18; 16 and later work)."
  type        = string
  default     = "17"
}

variable "database_name" {
  description = "Name of the vitalflow database (schemas raw/refined/derived/meta/identity inside)."
  type        = string
  default     = "vitalflow"
}

variable "replicas" {
  description = "Read replicas besides the primary (analysts and exports read from them)."
  type        = number
  default     = 1
}

variable "instance_class" {
  description = "RDS instance class of the primary and replicas, e.g. db.t4g.medium (rds variant)."
  type        = string
  default     = "db.t4g.medium"
}

variable "storage_gb" {
  description = "Initial storage in GiB (RDS autoscaling may grow it to max_storage_gb; PVC size on Kubernetes)."
  type        = number
  default     = 50
}

variable "max_storage_gb" {
  description = "Upper bound of RDS storage autoscaling in GiB (rds variant)."
  type        = number
  default     = 500
}

variable "multi_az" {
  description = "Standby in a second availability zone (rds variant)."
  type        = bool
  default     = true
}

variable "backup_retention_days" {
  description = "Days of automated backups and point-in-time recovery."
  type        = number
  default     = 14
}

variable "deletion_protection" {
  description = "Refuse to delete the database (turn off only to tear down a dev environment)."
  type        = bool
  default     = true
}

variable "kms_key_arn" {
  description = "KMS key encrypting storage, snapshots, Performance Insights and the admin secret (rds variant)."
  type        = string
  default     = null
}

variable "subnet_ids" {
  description = "Private subnets of the database (rds variant; at least two zones)."
  type        = list(string)
  default     = []
}

variable "security_group_ids" {
  description = "Security groups of the database (rds variant)."
  type        = list(string)
  default     = []
}

variable "namespace" {
  description = "Kubernetes namespace of the Patroni cluster (kubernetes variant)."
  type        = string
  default     = "vitalflow"
}

variable "kubernetes_cpu" {
  description = "CPU request and limit of each Patroni pod, e.g. \"2\" (kubernetes variant)."
  type        = string
  default     = "1"
}

variable "kubernetes_memory" {
  description = "Memory request and limit of each Patroni pod, e.g. \"4Gi\" (kubernetes variant)."
  type        = string
  default     = "2Gi"
}

variable "client_cidr" {
  description = "CIDR the Patroni cluster accepts TLS connections from, e.g. the pod network (kubernetes variant)."
  type        = string
  default     = "10.0.0.0/8"
}
