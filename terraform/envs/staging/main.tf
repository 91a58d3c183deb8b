# staging: production's shape at a smaller size. RDS with one replica, the mixed storage profile
# (raw on Iceberg, refined in PostgreSQL, derived in ClickHouse, self-managed on Kubernetes).
module "stack" {
  source          = "../../modules/stack"
  environment     = "staging"
  storage_profile = "mixed"
  alert_emails    = var.alert_emails
  network = {
    vpc_cidr        = "10.41.0.0/16"
    private_subnets = { "${var.region}a" = "10.41.1.0/24", "${var.region}b" = "10.41.2.0/24" }
  }
  database = {
    variant             = "rds"
    replicas            = 1
    instance_class      = "db.t4g.large"
    storage_gb          = 100
    max_storage_gb      = 500
    multi_az            = true
    backup_days         = 7
    deletion_protection = true
  }
  object_store = {
    raw_infrequent_access_days = 30
    raw_glacier_days           = 0
    noncurrent_version_days    = 14
    audit_retention_days       = 365
    force_destroy              = false
  }
  clickhouse = { variant = "self_managed", replicas = 2, storage_gb = 100 }
  prefect = {
    api_url          = var.prefect_api_url
    pool_concurrency = 4
    workers          = 1
    image            = var.image
  }
}
