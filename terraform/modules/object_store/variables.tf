variable "name_prefix" {
  description = "Prefix of the bucket names, e.g. vitalflow-prod (bucket names are global: add an account suffix if taken)."
  type        = string
}

variable "tags" {
  description = "Tags put on every taggable resource."
  type        = map(string)
}

variable "kms_key_arn" {
  description = "Customer-managed KMS key encrypting every object and the event queue."
  type        = string
}

variable "raw_prefix" {
  description = "Key prefix of the raw layer's input files; new objects there raise an event."
  type        = string
  default     = "raw/"
}

variable "warehouse_prefix" {
  description = "Key prefix of the Iceberg warehouse (iceberg.warehouse = s3://BUCKET/PREFIX)."
  type        = string
  default     = "warehouse/"
}

variable "raw_infrequent_access_days" {
  description = "Days after which raw input objects move to STANDARD_IA (raw is read again only on rebuilds)."
  type        = number
  default     = 30
}

variable "raw_glacier_days" {
  description = "Days after which raw input objects move to GLACIER_IR; 0 keeps them in IA."
  type        = number
  default     = 0
}

variable "noncurrent_version_days" {
  description = "Days a replaced or deleted object version is kept (Iceberg snapshot expiry removes files; this bounds the cost of their old versions)."
  type        = number
  default     = 30
}

variable "audit_retention_days" {
  description = "Object-lock (COMPLIANCE) retention of the audit anchors: nobody, root included, can delete or overwrite them before it ends."
  type        = number
  default     = 2555
}

variable "access_log_days" {
  description = "Days the S3 server access logs are kept."
  type        = number
  default     = 365
}

variable "force_destroy" {
  description = "Let `terraform destroy` empty the data bucket (dev only; never in production)."
  type        = bool
  default     = false
}
