# dev: small and disposable. PostgreSQL as a Patroni pair in the team's Kubernetes cluster, the
# postgres storage profile (no ClickHouse), buckets that destroy may empty.
module "stack" {
  source          = "../../modules/stack"
  environment     = "dev"
  storage_profile = "postgres"
  alert_emails    = var.alert_emails
  network = {
    vpc_cidr        = "10.40.0.0/16"
    private_subnets = { "${var.region}a" = "10.40.1.0/24", "${var.region}b" = "10.40.2.0/24" }
  }
  database = {
    variant             = "kubernetes"
    replicas            = 1
    storage_gb          = 20
    multi_az            = false
    backup_days         = 7
    deletion_protection = false
    kubernetes_cpu      = "500m"
    kubernetes_memory   = "1Gi"
  }
  object_store = {
    raw_infrequent_access_days = 30
    raw_glacier_days           = 0
    noncurrent_version_days    = 7
    audit_retention_days       = 30
    force_destroy              = true
  }
  clickhouse = { variant = "self_managed" }
  prefect = {
    api_url          = var.prefect_api_url
    pool_concurrency = 2
    workers          = 1
    image            = var.image
    job_memory       = "2Gi"
  }
}
