# What `vitalflow config from-terraform` turns into config/<env>.toml: addresses and secret ARNs,
# never a secret value.
output "vitalflow" {
  description = "Settings of this environment for vitalflow (no secret values: secrets are named by ARN)."
  value = {
    environment     = var.environment
    storage_profile = var.storage_profile
    database = {
      host            = module.database.host
      port            = module.database.port
      name            = module.database.database_name
      user            = "vitalflow_app"
      sslmode         = "verify-full"
      reader_hosts    = module.database.reader_hosts
      password_secret = module.network_and_secrets.secret_arns["db_app"]
      admin_secret    = module.database.admin_secret
    }
    s3 = {
      endpoint         = "https://s3.${data.aws_region.current.region}.amazonaws.com"
      region           = data.aws_region.current.region
      bucket           = module.object_store.data_bucket
      raw_uri          = module.object_store.raw_uri
      raw_events_queue = module.object_store.raw_events_queue_url
      audit_bucket     = module.object_store.audit_bucket
    }
    iceberg = { warehouse = module.object_store.warehouse }
    clickhouse = local.use_clickhouse ? {
      url             = module.clickhouse[0].url
      password_secret = module.clickhouse[0].password_secret_arn
    } : null
    privacy    = { pseudonym_key_secret = module.network_and_secrets.secret_arns["pseudonym_key"] }
    prefect    = { api_url = module.prefect.api_url, work_pool = module.prefect.work_pool }
    monitoring = { alert_topic_arn = module.monitoring.alert_topic_arn, log_group = module.monitoring.log_group }
  }
}
