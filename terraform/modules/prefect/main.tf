# A Kubernetes work pool and the workers that poll it; each flow run becomes a Job with the
# vitalflow image and the environment's config.
resource "prefect_work_pool" "main" {
  name              = var.work_pool_name
  type              = "kubernetes"
  paused            = false
  concurrency_limit = var.pool_concurrency
  base_job_template = jsonencode({
    job_configuration = {
      namespace = var.namespace
      image     = var.image
      env = {
        VITALFLOW_CONFIG = "/app/config/deploy/vitalflow.toml"
      }
      job_manifest = {
        apiVersion = "batch/v1"
        kind       = "Job"
        metadata   = { namespace = var.namespace, labels = var.tags }
        spec = {
          backoffLimit = 0
          template = {
            spec = {
              serviceAccountName = kubernetes_service_account.workers.metadata[0].name
              restartPolicy      = "Never"
              containers = [{
                name      = "prefect-job"
                image     = var.image
                resources = { requests = { cpu = var.job_cpu, memory = var.job_memory }, limits = { memory = var.job_memory } }
              }]
            }
          }
        }
      }
    }
    variables = { type = "object", properties = {} }
  })
}

resource "kubernetes_service_account" "workers" {
  metadata {
    name      = "${var.name_prefix}-prefect-worker"
    namespace = var.namespace
    labels    = var.tags
  }
  automount_service_account_token = false
}

resource "kubernetes_deployment" "workers" {
  metadata {
    name      = "${var.name_prefix}-prefect-worker"
    namespace = var.namespace
    labels    = var.tags
  }
  spec {
    replicas = var.workers
    selector {
      match_labels = { app = "${var.name_prefix}-prefect-worker" }
    }
    template {
      metadata {
        labels = merge(var.tags, { app = "${var.name_prefix}-prefect-worker" })
      }
      spec {
        service_account_name            = kubernetes_service_account.workers.metadata[0].name
        automount_service_account_token = false
        security_context {
          run_as_non_root = true
          run_as_user     = 10001
          run_as_group    = 10001
          fs_group        = 10001
          seccomp_profile {
            type = "RuntimeDefault"
          }
        }
        container {
          name              = "worker"
          image             = var.image
          image_pull_policy = "Always"
          command           = ["prefect", "worker", "start", "--pool", prefect_work_pool.main.name, "--type", "kubernetes", "--with-healthcheck"]
          env {
            name  = "PREFECT_API_URL"
            value = var.prefect_api_url
          }
          env {
            name  = "PREFECT_WORKER_WEBSERVER_PORT"
            value = "8080"
          }
          env {
            name  = "PREFECT_HOME"
            value = "/tmp/prefect"
          }
          dynamic "volume_mount" {
            for_each = var.api_key_k8s_secret == "" ? [] : [1]
            content {
              name       = "prefect-api-key"
              mount_path = "/var/run/secrets/prefect"
              read_only  = true
            }
          }
          volume_mount {
            name       = "config"
            mount_path = "/app/config/deploy"
            read_only  = true
          }
          volume_mount {
            name       = "tmp"
            mount_path = "/tmp"
          }
          resources {
            requests = { cpu = var.worker_cpu, memory = var.worker_memory }
            limits   = { cpu = var.worker_cpu, memory = var.worker_memory }
          }
          liveness_probe {
            http_get {
              path = "/health"
              port = 8080
            }
            initial_delay_seconds = 30
            period_seconds        = 30
          }
          readiness_probe {
            http_get {
              path = "/health"
              port = 8080
            }
            initial_delay_seconds = 10
            period_seconds        = 15
          }
          security_context {
            allow_privilege_escalation = false
            read_only_root_filesystem  = true
            run_as_non_root            = true
            run_as_user                = 10001
            capabilities {
              drop = ["ALL"]
            }
          }
        }
        # The API key is a file, never an environment value in the pod spec: the image's entry
        # point (infra/compose/entrypoint.sh) exports it to the worker process only.
        dynamic "volume" {
          for_each = var.api_key_k8s_secret == "" ? [] : [1]
          content {
            name = "prefect-api-key"
            secret {
              secret_name  = var.api_key_k8s_secret
              default_mode = "0400"
            }
          }
        }
        volume {
          name = "config"
          config_map {
            name = var.config_map
          }
        }
        volume {
          name = "tmp"
          empty_dir {}
        }
      }
    }
  }
}
