# One vitalflow environment: network and secrets, PostgreSQL, the object store, ClickHouse when
# the storage profile uses it, the Prefect work pool and workers, monitoring.
locals {
  name_prefix    = "vitalflow-${var.environment}"
  tags           = merge(var.tags, { Project = "vitalflow", Environment = var.environment, ManagedBy = "terraform" })
  use_clickhouse = contains(["clickhouse", "mixed"], var.storage_profile)
}

module "network_and_secrets" {
  source               = "../network_and_secrets"
  name_prefix          = local.name_prefix
  tags                 = local.tags
  vpc_cidr             = var.network.vpc_cidr
  private_subnets      = var.network.private_subnets
  existing_secret_arns = var.existing_secret_arns
}

module "database" {
  source                = "../database"
  name_prefix           = local.name_prefix
  tags                  = local.tags
  variant               = var.database.variant
  replicas              = var.database.replicas
  instance_class        = var.database.instance_class
  storage_gb            = var.database.storage_gb
  max_storage_gb        = var.database.max_storage_gb
  multi_az              = var.database.multi_az
  backup_retention_days = var.database.backup_days
  deletion_protection   = var.database.deletion_protection
  kms_key_arn           = module.network_and_secrets.kms_key_arn
  subnet_ids            = module.network_and_secrets.private_subnet_ids
  security_group_ids    = [module.network_and_secrets.data_security_group_id]
  namespace             = var.namespace
  kubernetes_cpu        = var.database.kubernetes_cpu
  kubernetes_memory     = var.database.kubernetes_memory
  client_cidr           = var.network.vpc_cidr
}

module "object_store" {
  source                     = "../object_store"
  name_prefix                = local.name_prefix
  tags                       = local.tags
  kms_key_arn                = module.network_and_secrets.kms_key_arn
  raw_infrequent_access_days = var.object_store.raw_infrequent_access_days
  raw_glacier_days           = var.object_store.raw_glacier_days
  noncurrent_version_days    = var.object_store.noncurrent_version_days
  audit_retention_days       = var.object_store.audit_retention_days
  force_destroy              = var.object_store.force_destroy
}

module "clickhouse" {
  source              = "../clickhouse"
  count               = local.use_clickhouse ? 1 : 0
  name_prefix         = local.name_prefix
  tags                = local.tags
  variant             = var.clickhouse.variant
  password_secret_arn = module.network_and_secrets.secret_arns["clickhouse_password"]
  cloud_min_memory_gb = var.clickhouse.min_memory_gb
  cloud_max_memory_gb = var.clickhouse.max_memory_gb
  cloud_idle_scaling  = var.clickhouse.idle_scaling
  allowed_cidrs       = var.clickhouse.allowed_cidrs
  namespace           = var.namespace
  replicas            = var.clickhouse.replicas
  storage_gb          = var.clickhouse.storage_gb
}

module "prefect" {
  source              = "../prefect"
  name_prefix         = local.name_prefix
  tags                = local.tags
  work_pool_name      = "${local.name_prefix}-pool"
  pool_concurrency    = var.prefect.pool_concurrency
  workers             = var.prefect.workers
  namespace           = var.namespace
  image               = var.prefect.image
  prefect_api_url     = var.prefect.api_url
  api_key_secret_name = var.prefect.api_key_secret_name
  config_map          = "${local.name_prefix}-config"
  runtime_secret_name = "${local.name_prefix}-runtime"
  job_memory          = var.prefect.job_memory
}

module "monitoring" {
  source                = "../monitoring"
  name_prefix           = local.name_prefix
  tags                  = local.tags
  kms_key_arn           = module.network_and_secrets.kms_key_arn
  alert_emails          = var.alert_emails
  rds_instance_ids      = module.database.rds_instance_ids
  raw_dead_letter_queue = module.object_store.raw_dead_letter_queue
}
