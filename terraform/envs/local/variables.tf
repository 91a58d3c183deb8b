variable "admin_url" {
  description = "libpq URL of a superuser of the embedded PostgreSQL, naming its passfile (`vitalflow services status` shows the port); never a password."
  type        = string
  validation {
    condition     = !can(regex("^[a-z]+://[^/@]*:[^/@]*@", var.admin_url))
    error_message = "admin_url must not carry a password: name a passfile (?passfile=...) instead."
  }
}

variable "database_name" {
  description = "Database created for this environment."
  type        = string
  default     = "vitalflow_local"
}

variable "role_prefix" {
  description = "Prefix of the roles created: PREFIX_app (owner, LOGIN), PREFIX_analyst and PREFIX_reidentifier (NOLOGIN groups)."
  type        = string
  default     = "vflocal"
}

variable "passfile" {
  description = "libpq passfile (mode 600) receiving the generated password of PREFIX_app."
  type        = string
}

variable "schemas" {
  description = "Schemas created in the database and owned by PREFIX_app."
  type        = list(string)
  default     = ["meta", "refined", "derived", "identity"]
}

variable "analyst_schemas" {
  description = "Schemas PREFIX_analyst may read (now and tables created later); never identity."
  type        = list(string)
  default     = ["refined", "derived"]
  validation {
    condition     = !contains(var.analyst_schemas, "identity")
    error_message = "Analysts never read the identity schema."
  }
}

variable "s3_endpoint" {
  description = "Endpoint of the embedded S3 store (SeaweedFS), e.g. http://127.0.0.1:8333."
  type        = string
}

variable "s3_home" {
  description = "Folder of the embedded S3 store whose secrets/s3.json holds its generated keys."
  type        = string
}

variable "bucket" {
  description = "Bucket created for raw input and the Iceberg warehouse."
  type        = string
  default     = "vitalflow-local"
}

variable "storage_profile" {
  description = "vitalflow storage profile written into the generated config (postgres, lakehouse, clickhouse or mixed)."
  type        = string
  default     = "lakehouse"
}

variable "python" {
  description = "Python interpreter with vitalflow installed (the project's .venv/bin/python)."
  type        = string
}
