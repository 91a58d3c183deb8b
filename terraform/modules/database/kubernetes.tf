# Kubernetes: a Patroni cluster (primary plus replicas, automatic fail-over) declared for the
# Zalando postgres-operator, which must already run in the cluster. The operator generates each
# role's password into a Kubernetes secret; Terraform never sees them.
locals {
  patroni_name = "${var.name_prefix}-pg"
}

resource "kubernetes_manifest" "patroni" {
  count = var.variant == "kubernetes" ? 1 : 0
  manifest = {
    apiVersion = "acid.zalan.do/v1"
    kind       = "postgresql"
    metadata = {
      name      = local.patroni_name
      namespace = var.namespace
      labels    = var.tags
    }
    spec = {
      teamId            = "vitalflow"
      numberOfInstances = 1 + var.replicas
      postgresql = {
        version = var.engine_version
        parameters = {
          log_connections            = "on"
          log_disconnections         = "on"
          log_min_duration_statement = "5000"
          log_statement              = "ddl"
          password_encryption        = "scram-sha-256"
        }
      }
      volume = { size = "${var.storage_gb}Gi" }
      resources = {
        requests = { cpu = var.kubernetes_cpu, memory = var.kubernetes_memory }
        limits   = { cpu = var.kubernetes_cpu, memory = var.kubernetes_memory }
      }
      users = {
        vitalflow_app          = ["createrole"]
        vitalflow_analyst      = []
        vitalflow_reidentifier = []
      }
      databases                 = { (var.database_name) = "vitalflow_app" }
      enableReplicaLoadBalancer = false
      enableMasterLoadBalancer  = false
      patroni = {
        synchronous_mode = var.replicas > 0
        pg_hba = [
          "hostssl all all ${var.client_cidr} scram-sha-256",
          "host all all all reject",
        ]
      }
    }
  }
}
