# prod: RDS Multi-AZ with two read replicas, the mixed storage profile with ClickHouse Cloud,
# seven years of object-locked audit anchors, raw input to Glacier after a year.
module "stack" {
  source          = "../../modules/stack"
  environment     = "prod"
  storage_profile = "mixed"
  alert_emails    = var.alert_emails
  network = {
    vpc_cidr        = "10.42.0.0/16"
    private_subnets = { "${var.region}a" = "10.42.1.0/24", "${var.region}b" = "10.42.2.0/24", "${var.region}c" = "10.42.3.0/24" }
  }
  database = {
    variant             = "rds"
    replicas            = 2
    instance_class      = "db.r7g.xlarge"
    storage_gb          = 500
    max_storage_gb      = 4000
    multi_az            = true
    backup_days         = 35
    deletion_protection = true
  }
  object_store = {
    raw_infrequent_access_days = 30
    raw_glacier_days           = 365
    noncurrent_version_days    = 90
    audit_retention_days       = 2555
    force_destroy              = false
  }
  clickhouse = {
    variant       = "cloud"
    min_memory_gb = 16
    max_memory_gb = 64
    allowed_cidrs = var.clickhouse_allowed_cidrs
  }
  prefect = {
    api_url          = var.prefect_api_url
    pool_concurrency = 8
    workers          = 2
    image            = var.image
    job_memory       = "6Gi"
  }
}

variable "clickhouse_allowed_cidrs" {
  description = "Egress addresses (NAT) of the workers allowed to reach ClickHouse Cloud."
  type        = list(string)
}
