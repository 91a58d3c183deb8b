# The password is read from Secrets Manager as an ephemeral value and handed to ClickHouse Cloud
# through a write-only attribute: it is in neither state nor plan.
ephemeral "aws_secretsmanager_secret_version" "password" {
  count     = var.variant == "cloud" ? 1 : 0
  secret_id = var.password_secret_arn
}

resource "clickhouse_service" "main" {
  count                 = var.variant == "cloud" ? 1 : 0
  name                  = var.name_prefix
  cloud_provider        = "aws"
  region                = var.cloud_region
  idle_scaling          = var.cloud_idle_scaling
  min_replica_memory_gb = var.cloud_min_memory_gb
  max_replica_memory_gb = var.cloud_max_memory_gb
  password_wo           = ephemeral.aws_secretsmanager_secret_version.password[0].secret_string
  password_wo_version   = var.password_version
  tags                  = var.tags

  dynamic "ip_access" {
    for_each = var.allowed_cidrs
    content {
      source      = ip_access.value
      description = "vitalflow workers"
    }
  }
}

resource "kubernetes_manifest" "installation" {
  count = var.variant == "self_managed" ? 1 : 0
  manifest = {
    apiVersion = "clickhouse.altinity.com/v1"
    kind       = "ClickHouseInstallation"
    metadata = {
      name      = var.name_prefix
      namespace = var.namespace
      labels    = var.tags
    }
    spec = {
      configuration = {
        users = {
          "vitalflow/k8s_secret_password" = var.password_secret_name
          "vitalflow/networks/ip"         = ["10.0.0.0/8"]
          "vitalflow/profile"             = "default"
        }
        clusters = [{
          name   = "vitalflow"
          layout = { shardsCount = var.shards, replicasCount = var.replicas }
        }]
      }
      defaults = { templates = { dataVolumeClaimTemplate = "data" } }
      templates = {
        volumeClaimTemplates = [{
          name = "data"
          spec = {
            accessModes = ["ReadWriteOnce"]
            resources   = { requests = { storage = "${var.storage_gb}Gi" } }
          }
        }]
      }
    }
  }
}
