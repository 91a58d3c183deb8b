variable "name_prefix" {
  description = "Prefix of every resource name, e.g. vitalflow-prod."
  type        = string
}

variable "tags" {
  description = "Tags put on every taggable resource (owner, environment, cost centre)."
  type        = map(string)
}

variable "vpc_cidr" {
  description = "CIDR block of the VPC holding the databases and workers."
  type        = string
  default     = "10.40.0.0/16"
}

variable "private_subnets" {
  description = "Availability zone => CIDR of one private subnet; at least two zones for RDS."
  type        = map(string)
}

variable "interface_endpoints" {
  description = "AWS services reached through interface endpoints from the private subnets (no internet route)."
  type        = list(string)
  default     = ["secretsmanager", "sqs", "sts", "logs", "monitoring"]
}

variable "log_retention_days" {
  description = "Days the VPC flow logs are kept."
  type        = number
  default     = 365
}

variable "secret_recovery_days" {
  description = "Days a deleted secret can still be restored (7-30)."
  type        = number
  default     = 30
}

variable "secret_versions" {
  description = "Bump a secret's number to write a newly generated value (the old one stays as a previous version). The pseudonymisation key then needs `vitalflow rekey`."
  type        = map(number)
  default     = {}
}

variable "existing_secret_arns" {
  description = "Secrets that already exist (e.g. a pseudonymisation key carried over from another installation): name => secret ARN; these are read, never generated."
  type        = map(string)
  default     = {}
}
