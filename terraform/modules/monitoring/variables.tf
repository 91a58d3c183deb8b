variable "name_prefix" {
  description = "Prefix of every resource name, e.g. vitalflow-prod."
  type        = string
}

variable "tags" {
  description = "Tags put on every taggable resource."
  type        = map(string)
}

variable "kms_key_arn" {
  description = "KMS key encrypting the alert topic and the pipeline log group."
  type        = string
}

variable "alert_emails" {
  description = "Addresses subscribed to the alert topic (each confirms by mail)."
  type        = list(string)
  default     = []
}

variable "log_retention_days" {
  description = "Days the pipeline's logs are kept (they carry counts and reason codes, never patient data)."
  type        = number
  default     = 365
}

variable "rds_instance_ids" {
  description = "RDS instance identifiers to watch (empty for the Kubernetes variant, watched by Prometheus)."
  type        = list(string)
  default     = []
}

variable "raw_dead_letter_queue" {
  description = "Name of the dead-letter queue of raw-file events: any message there is a file no run picked up."
  type        = string
}

variable "cpu_alarm_percent" {
  description = "CPU utilisation of a database instance that raises an alarm after 15 minutes."
  type        = number
  default     = 85
}

variable "free_storage_alarm_gb" {
  description = "Free storage of a database instance (GiB) below which an alarm is raised."
  type        = number
  default     = 10
}

variable "replica_lag_alarm_seconds" {
  description = "Replica lag (seconds) above which an alarm is raised."
  type        = number
  default     = 300
}
