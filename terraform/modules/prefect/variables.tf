variable "name_prefix" {
  description = "Prefix of every resource name, e.g. vitalflow-prod."
  type        = string
}

variable "tags" {
  description = "Labels put on every Kubernetes object."
  type        = map(string)
}

variable "work_pool_name" {
  description = "Name of the Prefect work pool the deployments of prefect.yaml target."
  type        = string
}

variable "pool_concurrency" {
  description = "Flow runs the pool runs at once (refine itself is limited to one per profile by a concurrency limit)."
  type        = number
  default     = 4
}

variable "workers" {
  description = "Worker pods polling the pool."
  type        = number
  default     = 1
}

variable "namespace" {
  description = "Kubernetes namespace of the workers and their flow-run jobs."
  type        = string
  default     = "vitalflow"
}

variable "image" {
  description = "vitalflow image, pinned by digest (repository@sha256:...), used by workers and flow runs."
  type        = string
}

variable "prefect_api_url" {
  description = "PREFECT_API_URL the workers talk to (self-hosted server or Prefect Cloud workspace)."
  type        = string
}

variable "api_key_secret_name" {
  description = "Kubernetes secret holding the Prefect API key under key `key`, synced from Secrets Manager (External Secrets); empty for a server without authentication."
  type        = string
  default     = ""
}

variable "config_map" {
  description = "ConfigMap holding config/ENV.toml (from `vitalflow config from-terraform`), mounted at /app/config/deploy."
  type        = string
}

variable "worker_cpu" {
  description = "CPU request and limit of a worker pod."
  type        = string
  default     = "250m"
}

variable "worker_memory" {
  description = "Memory request and limit of a worker pod."
  type        = string
  default     = "512Mi"
}

variable "job_cpu" {
  description = "CPU request of a flow-run job (refine uses two processes)."
  type        = string
  default     = "2"
}

variable "job_memory" {
  description = "Memory limit of a flow-run job (1M observations peak at about 1.5 GiB)."
  type        = string
  default     = "4Gi"
}

variable "runtime_secret_name" {
  description = "Kubernetes secret (synced from Secrets Manager by External Secrets) whose keys become the flow runs' environment: PGPASSWORD, VITALFLOW_PSEUDONYM_KEY, VITALFLOW_CLICKHOUSE_PASSWORD; empty for none."
  type        = string
  default     = ""
}
